"""`${env:VAR}` and `${env:VAR:-default}` references in string values of a profile;
`$${` writes a literal `${`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# One alternation so that the escape is consumed before a reference can start
# inside it: "$${env:X}" is the literal text "${env:X}".
_TOKEN = re.compile(
    r"\$\$\{"                                                  # escape
    r"|\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$\{(?P<malformed>[^}]*)\}?"                           # anything else after ${
)
ENV_SYNTAX_HELP = "write ${env:NAME} or ${env:NAME:-default}, or $${ for a literal ${"


@dataclass(frozen=True, slots=True)
class Expansion:
    """The result of expanding one string value."""

    text: str
    # Variables that were set and whose value is now part of `text`: the value
    # counts as a secret.
    used: tuple[str, ...] = ()
    # Referenced with no default and not set: `text` is unusable.
    missing: tuple[str, ...] = ()
    # `${...}` that are not env references, as written.
    malformed: tuple[str, ...] = ()

    @property
    def from_env(self) -> bool:
        return bool(self.used)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.malformed


def expand_env(text: str, environ: Mapping[str, str]) -> Expansion:
    """Replace every env reference in `text` using `environ`."""
    used: list[str] = []
    missing: list[str] = []
    malformed: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            malformed.append(match.group(0))
            return match.group(0)
        if name in environ:
            used.append(name)
            return environ[name]
        default = match.group("default")
        if default is None:
            missing.append(name)
            return ""
        return default

    expanded = _TOKEN.sub(substitute, text)
    return Expansion(expanded, tuple(used), tuple(missing), tuple(malformed))
