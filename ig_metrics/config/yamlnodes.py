"""YAML read as a tree of nodes, so that every key and value keeps its line:
syntax errors, TAB indentation and duplicate keys become Problems."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"
Report = Callable[[int, str], None]        # (line, message) -> records an error


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


def compose_text(text: str, report: Report) -> yaml.Node | None:
    """The document's root node, or None for an empty file or a syntax error."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        tab_lines = [number for number, line in enumerate(text.splitlines(), 1)
                     if "\t" in line[: len(line) - len(line.lstrip(" \t"))]]
        if tab_lines:
            # The parser's own message for a TAB is cryptic and often on a later line.
            for number in tab_lines:
                report(number, "TAB character in indentation; YAML indents with spaces only")
            return None
        mark = error.problem_mark or error.context_mark
        detail = error.problem or "cannot parse"
        if error.context and detail.startswith("but "):
            detail = f"{error.context}, {detail}"
        elif error.context:
            detail += f" ({error.context})"
        report(mark.line + 1 if mark else 0, f"YAML syntax error: {detail}")
        return None
    except yaml.YAMLError as error:
        report(0, f"YAML syntax error: {error}")
        return None


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
    """The Python value YAML gives a scalar: str, int, float, bool or None."""
    return yaml.SafeLoader("").construct_object(node)


def describe_node(node: yaml.Node) -> str:
    """What a node holds, in words, for "expected X, got Y" messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
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
