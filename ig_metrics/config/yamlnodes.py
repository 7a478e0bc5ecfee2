"""YAML read as a tree of nodes, so that every key and value keeps its line:
syntax errors, TAB indentation and duplicate keys become Problems.

Whatever the bytes, reading gives a tree or problems at a line (and column),
never an exception, in bounded time and memory: a file is read only up to
MAX_FILE_BYTES, nested at most MAX_DEPTH levels, of at most MAX_NODES nodes (an
alias counts as the nodes it stands for, so an alias bomb is refused, not
expanded); a node that contains itself, tags other than YAML's plain ones and
scalars that do not convert (`2001-13-45` taken for a date) are refused where
they are written. docs/reliability.md ("What bad input gets") lists them."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"
VALUE_TAG = "tag:yaml.org,2002:value"
CORE_PREFIX = "tag:yaml.org,2002:"

# The bounds of one YAML file (docs/reliability.md). The largest file shipped (the
# tcp gadget.yaml) has 8 kB, 380 nodes and 7 levels; a ConfigMap, which carries the
# profiles to a cluster, holds 1 MiB in all. The pure-Python parser, the one whose
# messages the validator gives, takes about 1.2 s per MiB of the costliest text
# (blank lines) and 30 µs per node: the bounds keep any file well under a second.
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_NODES = 10_000
MAX_INT_BITS = 256             # no setting needs a larger integer
MAX_NUMBER_CHARS = 100         # nor one written longer
MAX_REPORTED = 20              # characters or TAB lines reported one by one, then counted

# The explicit tags a file may carry, by node kind: YAML's plain types only.
ALLOWED_TAGS = {
    yaml.ScalarNode: {f"{CORE_PREFIX}{name}" for name in ("str", "int", "float", "bool", "null")},
    yaml.SequenceNode: {f"{CORE_PREFIX}seq"},
    yaml.MappingNode: {f"{CORE_PREFIX}map"},
}
NUMBER_TAGS = (f"{CORE_PREFIX}int", f"{CORE_PREFIX}float")
KNOWN_TAGS = ("str", "int", "float", "bool", "null", "seq", "map", "binary", "timestamp", "set",
              "omap", "pairs", "merge", "value", "yaml")
TAGS_TAKEN = "!!str, !!int, !!float, !!bool, !!null, !!seq and !!map"
KIND_WORDS = {yaml.ScalarNode: "a scalar", yaml.SequenceNode: "a list",
              yaml.MappingNode: "a mapping"}
TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false",
              "null": "null", "timestamp": "a date"}
# Where YAML (and PyYAML's marks) start a new line.
LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


class Report(Protocol):
    """Records an error at a 1-based line (0: the whole file) and column (0: none)."""

    def __call__(self, line: int, message: str, column: int = 0) -> None: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One `key: value` of a mapping."""

    key: str
    key_node: yaml.Node
    value: yaml.Node

    @property
    def line(self) -> int:
        return line_of(self.key_node)


def line_of(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class Refused(yaml.MarkedYAMLError):
    """What the bounded loader refuses: `problem` is the whole message, at `problem_mark`."""

    problem: str
    problem_mark: yaml.Mark

    def __init__(self, message: str, mark: yaml.Mark) -> None:
        super().__init__(problem=message, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader's composition, bounded: depth, nodes (aliases expanded), no node
    inside itself, plain tags only, scalars that convert. Nothing is constructed
    but scalars, to check them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0                                  # aliases count as what they name
        self._sizes: dict[str, int] = {}                 # anchor -> nodes it stands for
        self._open: dict[str, yaml.Mark] = {}            # anchors of nodes being composed

    def _count(self, nodes: int, mark: yaml.Mark, what: str) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            raise Refused(f"more than {MAX_NODES} YAML nodes{what}; a file may have at most "
                          f"{MAX_NODES} (an alias counts as every node it stands for)", mark)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in PyYAML's stubs
        mark: yaml.Mark = event.start_mark       # the pure-Python parser marks every event
        if isinstance(event, yaml.AliasEvent):
            anchor = event.anchor
            if anchor in self._open:
                raise Refused(f"alias *{anchor} is inside the node it names (&{anchor}, line "
                              f"{self._open[anchor].line + 1}): a node cannot contain itself",
                              mark)
            if anchor in self._sizes:
                self._count(self._sizes[anchor], mark, f" once alias *{anchor} is expanded")
            return super().compose_node(parent, index)
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            raise Refused(f"anchor &{anchor} is defined twice (first at line "
                          f"{self.anchors[anchor].start_mark.line + 1})", mark)
        if self._depth >= MAX_DEPTH:
            raise Refused(f"nested more than {MAX_DEPTH} levels deep; a file may nest at most "
                          f"{MAX_DEPTH} levels", mark)
        self._count(1, mark, "")
        before = self._nodes - 1
        self._depth += 1
        if anchor is not None:
            self._open[anchor] = mark
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.pop(anchor, None)
        if anchor is not None:
            self._sizes[anchor] = self._nodes - before
        assert node is not None                  # typeshed allows None; a composed event is a node
        _check_tag(node, event.tag)
        return node

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        self._sizes = {}
        return node


def _shown_tag(tag: str) -> str:
    if tag.startswith(CORE_PREFIX):
        return "!!" + tag[len(CORE_PREFIX):]
    return tag if tag.startswith("!") else f"!<{tag}>"


def _check_tag(node: yaml.Node, written: str | None) -> None:
    """Refuses a tag other than YAML's plain ones, and a scalar that does not convert."""
    kind = type(node)
    if written not in (None, "!") and written not in ALLOWED_TAGS[kind]:
        shown = _shown_tag(written)
        if any(written in tags for tags in ALLOWED_TAGS.values()):
            problem = f"tag {shown} cannot be put on {KIND_WORDS[kind]}"
        elif written in {CORE_PREFIX + name for name in KNOWN_TAGS}:
            problem = f"unsupported tag {shown}"
        else:
            problem = f"unknown tag {shown}"
        raise Refused(f"{problem}; the tags ig-metrics reads are {TAGS_TAKEN}", node.start_mark)
    if isinstance(node, yaml.ScalarNode) and node.tag not in (MERGE_TAG, VALUE_TAG):
        explicit = written not in (None, "!")
        if node.tag in NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
            # Converting costs the square of the length (1:1:1:..., base 60).
            raise Refused(f"{_preview(node.value)} is too long for a number (more than "
                          f"{MAX_NUMBER_CHARS} characters)"
                          + ("" if explicit else "; quote it to keep it as text"),
                          node.start_mark)
        try:
            value = yaml.constructor.SafeConstructor().construct_object(node)
        except Exception as error:        # each constructor fails its own way (ValueError,
            # KeyError, AttributeError...): the value does not convert, whichever
            raise Refused(_unconvertible(node, error, explicit=explicit),
                          node.start_mark) from None
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise Refused(f"integer {_preview(node.value)} is too large (more than "
                          f"{MAX_INT_BITS} bits)", node.start_mark)


def _unconvertible(node: yaml.ScalarNode, error: Exception, *, explicit: bool) -> str:
    name = node.tag[len(CORE_PREFIX):] if node.tag.startswith(CORE_PREFIX) else node.tag
    expected = TYPE_WORDS.get(name, _shown_tag(node.tag))
    # datetime says what is wrong with a date in words; int() and float() in Python's.
    reason = str(error) if name == "timestamp" and isinstance(error, ValueError) else ""
    message = f"{_preview(node.value)} is not {expected}"
    if reason and len(reason) < 80:
        message += f" ({reason})"
    if not explicit:
        message += "; quote it to keep it as text"
    return message


def _preview(text: str) -> str:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return repr(shown)


def compose_text(text: str, report: Report) -> yaml.Node | None:
    """The document's root node, or None for an empty file or a problem reported."""
    try:
        return yaml.compose(text, Loader=BoundedLoader)
    except Refused as error:
        report(error.problem_mark.line + 1, error.problem, error.problem_mark.column + 1)
        return None
    except yaml.reader.ReaderError:
        _report_characters(text, report)
        return None
    except yaml.MarkedYAMLError as error:
        tab_lines = [number for number, line in enumerate(text.splitlines(), 1)
                     if "\t" in line[: len(line) - len(line.lstrip(" \t"))]]
        if tab_lines:
            # The parser's own message for a TAB is cryptic and often on a later line.
            for number in tab_lines[:MAX_REPORTED]:
                report(number, "TAB character in indentation; YAML indents with spaces only")
            if len(tab_lines) > MAX_REPORTED:
                report(tab_lines[MAX_REPORTED], f"{len(tab_lines) - MAX_REPORTED} more lines "
                                                "indented with a TAB")
            return None
        mark = error.problem_mark or error.context_mark
        detail = error.problem or "cannot parse"
        if error.context and detail.startswith("but "):
            detail = f"{error.context}, {detail}"
        elif error.context:
            detail += f" ({error.context})"
        report(mark.line + 1 if mark else 1, f"YAML syntax error: {detail}",
               mark.column + 1 if mark else 0)
        return None
    except yaml.YAMLError as error:        # every error of reading has a mark; in case not
        report(1, f"YAML syntax error: {' '.join(str(error).split())}")
        return None


def position_of(text: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of `text[index]`, lines counted as YAML does."""
    line, start = 1, 0
    for match in LINE_BREAK.finditer(text, 0, index):
        line, start = line + 1, match.end()
    return line, index - start + 1


def _report_characters(text: str, report: Report) -> None:
    """Every character YAML does not allow, at its line and column, with its code point."""
    found = list(zip(range(MAX_REPORTED + 1),
                     yaml.reader.Reader.NON_PRINTABLE.finditer(text)))
    if found and found[0][1].group() == "\0" and text[:200].count("\0") * 3 > min(len(text), 200):
        line, column = position_of(text, found[0][1].start())
        report(line, "the file looks like UTF-16 or UTF-32 text (NUL characters between "
                     "the letters); YAML files are read as UTF-8: save it as UTF-8", column)
        return
    for _, match in found[:MAX_REPORTED]:
        line, column = position_of(text, match.start())
        report(line, f"{_character(match.group())} is not allowed in YAML", column)
    if len(found) > MAX_REPORTED:
        match = found[MAX_REPORTED][1]
        line, column = position_of(text, match.start())
        report(line, "more characters YAML does not allow, from here on", column)


def _character(char: str) -> str:
    code = ord(char)
    what = "control character" if code < 0x20 or 0x7F <= code < 0xA0 else "character"
    return f"{what} U+{code:04X}"


def decode_text(data: bytes, report: Report) -> str | None:
    """`data` as UTF-8 text, or None with the line and column of its first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        for bom, encoding in BOMS:
            if data.startswith(bom):
                report(1, f"the file is {encoding} text (it starts with a {encoding} byte order "
                          "mark); YAML files are read as UTF-8: save it as UTF-8", 1)
                return None
        before = data[: error.start].decode("utf-8")       # all good up to the bad byte
        line, column = position_of(before, len(before))
        byte = data[error.start]
        report(line, f"not UTF-8 text: byte 0x{byte:02X} ({error.reason})", column)
        return None


def read_yaml_file(path: Path, report: Report) -> yaml.Node | None:
    """The root node of the YAML file `path` (None when empty or unreadable, the
    problems reported). At most MAX_FILE_BYTES are read, whatever the file is."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        report(0, f"cannot read: {error.strerror or error}")
        return None
    if len(data) > MAX_FILE_BYTES:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0                       # unknown: a pipe, a device
        has = f"{size} bytes, more than" if size > MAX_FILE_BYTES else "more than"
        head = data[:MAX_FILE_BYTES].decode("utf-8", "replace")
        line, column = position_of(head, len(head))
        report(line, f"the file has {has} the {MAX_FILE_BYTES} bytes ({MAX_FILE_BYTES // 1024} "
                     "KiB) a YAML file may have: not read beyond this point", column)
        return None
    text = decode_text(data, report)
    return None if text is None else compose_text(text, report)


def mapping_entries(node: yaml.MappingNode, report: Report) -> dict[str, Entry]:
    """The entries of a mapping in file order; reports duplicate and non-text keys.

    Merge keys (`<<: *anchor`) are applied: explicit keys win over merged ones.
    """
    entries: dict[str, Entry] = {}
    merged: list[yaml.MappingNode] = []
    for key_node, value_node in node.value:
        if key_node.tag == MERGE_TAG:
            merged.extend(_merge_sources(value_node, report))
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            report(line_of(key_node), "a key must be plain text, not a list or a mapping")
            continue
        key = key_node.value
        if key in entries:
            report(line_of(key_node),
                   f"duplicate key '{key}' (first at line {entries[key].line}); "
                   "YAML would silently keep only the last one")
            continue
        entries[key] = Entry(key, key_node, value_node)
    for source in merged:
        for key, entry in mapping_entries(source, report).items():
            entries.setdefault(key, entry)
    return entries


def _merge_sources(value: yaml.Node, report: Report) -> list[yaml.MappingNode]:
    sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
    good = [source for source in sources if isinstance(source, yaml.MappingNode)]
    if len(good) != len(sources):
        report(line_of(value), "'<<' merges only mappings (e.g. <<: *defaults)")
    return good


def scalar_value(node: yaml.ScalarNode) -> object:
    """The Python value YAML gives a scalar: str, int, float, bool or None (or a
    date). `<<` and `=` away from a key are the text they are."""
    if node.tag in (MERGE_TAG, VALUE_TAG):
        return node.value
    return yaml.constructor.SafeConstructor().construct_object(node)


def describe_node(node: yaml.Node) -> str:
    """What a node holds, in words, for "expected X, got Y" messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if not isinstance(node, yaml.ScalarNode):
        return "a list"
    value = scalar_value(node)
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return type(value).__name__
