""""Did you mean …?" for names a person mistyped."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable

# Up to this many candidates, the closest by difflib's ratio. Beyond, difflib's cost
# (a few µs per candidate, for every mistyped name) would grow with the square of a
# file's size: one typo away (a character added, dropped, changed, or two swapped)
# is found in an index of the candidates instead.
DIFFLIB_CANDIDATES = 64
LONGEST_DIFFLIB_WORD = 1024    # names longer than these get no suggestion
LONGEST_INDEXED_WORD = 64


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like `word`, or None when nothing is close."""
    names = tuple(candidates)
    if len(names) <= DIFFLIB_CANDIDATES:
        if len(word) > LONGEST_DIFFLIB_WORD:
            return None
        matches = difflib.get_close_matches(word, list(names), n=1, cutoff=0.6)
        return matches[0] if matches else None
    if len(word) > LONGEST_INDEXED_WORD:
        return None
    index = _one_typo_index(names)
    for variant in _deletions(word):
        if variant in index:
            return index[variant]
    return None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """"; did you mean 'x'?" or "" — to append to a message about `word`."""
    match = closest(word, candidates)
    return f"; did you mean '{match}'?" if match else ""


def _deletions(word: str) -> list[str]:
    """`word`, and `word` without one of its characters when two or more remain."""
    if len(word) < 3:
        return [word]
    return [word, *(word[:i] + word[i + 1:] for i in range(len(word)))]


@functools.lru_cache(maxsize=8)
def _one_typo_index(names: tuple[str, ...]) -> dict[str, str]:
    """Each name, and each name without one of its characters -> the first such name
    (a name itself first). Two words one typo apart share an entry."""
    short = [name for name in names if len(name) <= LONGEST_INDEXED_WORD]
    index = {name: name for name in short}
    for name in short:
        for variant in _deletions(name)[1:]:
            index.setdefault(variant, name)
    return index
