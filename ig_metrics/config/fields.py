"""A setting as a table row (key, kind, doc, example, default) and the reading of
a YAML mapping against a table of them: unknown keys, missing keys, defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.fieldkinds import Kind, Parsed
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.config.yamlnodes import Entry, describe_node, line_of, mapping_entries

NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Field:
    """One setting a mapping may hold."""

    key: str
    kind: Kind
    doc: str
    example: Any                      # as written in YAML (JSON-able)
    required: bool = False
    default: Any = NO_DEFAULT         # the value given to the settings when absent
    default_shown: Any = NO_DEFAULT   # the same as a person writes it (schema, docs)

    @property
    def summary(self) -> str:
        """The doc's first sentence, without its full stop."""
        sentence = self.doc.split(". ")[0].rstrip(".")
        return sentence[:1].lower() + sentence[1:]

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    def schema(self) -> dict:
        schema = {"description": self.doc, **self.kind.schema(), "examples": [self.example]}
        if self.default_shown is not NO_DEFAULT:
            schema["default"] = self.default_shown
        return schema


@dataclass(slots=True)
class FieldValues:
    """What parse_fields read: per key, the value and the line it was written on."""

    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    ok: bool = True


def parse_fields(entries: Mapping[str, Entry], fields: Sequence[Field], site: Site,
                 ctx: FileContext, owner: str, owner_line: int) -> FieldValues:
    """Read `entries` against `fields`; `owner` names what the mapping is, in the
    plural, for messages ("otlp-grpc exporters")."""
    by_key = {f.key: f for f in fields}
    errors_before = ctx.error_count
    result = FieldValues()
    for key, entry in entries.items():
        if key not in by_key:
            ctx.error(entry.line, f"{site.child(key)}: unknown key '{key}'"
                                  f"{did_you_mean(key, by_key) or '.'} "
                                  f"Allowed keys for {owner}: {', '.join(by_key)}")
            continue
        parsed = by_key[key].kind.parse(entry.value, site.child(key), ctx)
        if parsed is not None:
            result.values[key] = parsed.value
            result.lines[key] = entry.line
    for f in fields:
        if f.key in entries:
            continue
        if f.required:
            ctx.error(owner_line, f"{site}: missing required key '{f.key}' "
                                  f"({f.summary}; e.g. {f.key}: {inline_yaml(f.example)})")
        elif f.has_default:
            result.values[f.key] = f.default
    result.ok = ctx.error_count == errors_before
    return result


def inline_yaml(value: Any) -> str:
    """`value` as YAML flow text, for examples inside messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(inline_yaml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {inline_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def require_mapping(node: yaml.Node, site: Site, ctx: FileContext,
                    what: str) -> dict[str, Entry] | None:
    """The entries of a mapping node, or None after saying it is not one."""
    if not isinstance(node, yaml.MappingNode):
        ctx.error(line_of(node), f"{site}: expected {what}, got {describe_node(node)}")
        return None
    return mapping_entries(node, ctx.error)


@dataclass(frozen=True)
class Section(Kind):
    """A nested mapping with its own fields (e.g. `tls:`)."""

    fields: tuple[Field, ...]
    owner: str

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"a mapping of {', '.join(self.keys)}"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        entries = require_mapping(node, site, ctx, self.expected)
        if entries is None:
            return None
        read = parse_fields(entries, self.fields, site, ctx, self.owner, line_of(node))
        return Parsed(read.values) if read.ok else None

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.fields]

    def schema(self) -> dict:
        return object_schema(self.fields)


def object_schema(fields: Sequence[Field]) -> dict:
    """JSON Schema of a mapping made of `fields`, nothing else allowed."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.key: f.schema() for f in fields},
        "additionalProperties": False,
    }
    required = [f.key for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema
