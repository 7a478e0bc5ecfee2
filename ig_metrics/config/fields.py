"""A setting as a table row (key, kind, doc, example, default) and the reading of
a YAML mapping against a table of them: unknown keys, missing keys, defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.fieldkinds import Kind, Parsed
from ig_metrics.config.rules import Draft, Rule
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.config.yamlnodes import Entry, describe_node, line_of, mapping_entries

NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class EnvVar:
    """An environment variable a setting defaults to, and the kind that reads its
    format when that is not the setting's own (milliseconds, `k=v,...` headers)."""

    name: str
    kind: Kind | None = None


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
    # Environment variables read when the key is absent, first set one wins
    # (OTEL_EXPORTER_OTLP_*).
    env: tuple[EnvVar, ...] = ()

    @property
    def summary(self) -> str:
        """The doc's first sentence, without its full stop."""
        sentence = self.doc.split(". ")[0].rstrip(".")
        return sentence[:1].lower() + sentence[1:]

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    def schema(self) -> dict[str, Any]:
        schema = {"description": self.doc, **self.kind.schema(), "examples": [self.example]}
        if self.default_shown is not NO_DEFAULT:
            schema["default"] = self.default_shown
        return schema


@dataclass(slots=True)
class FieldValues:
    """What parse_fields read: per key, the value and the line it was written on."""

    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    from_env: dict[str, str] = field(default_factory=dict)   # key -> the variable read
    ok: bool = True


def parse_fields(entries: Mapping[str, Entry], fields: Sequence[Field], site: Site,
                 ctx: FileContext, owner: str, owner_line: int, *,
                 use_env: bool = True) -> FieldValues:
    """Read `entries` against `fields`; `owner` names what the mapping is, in the
    plural, for messages ("otlp-grpc exporters"). With `use_env`, absent keys
    take the environment variables their field names (a written section is
    read with use_env=False: what the file sets is the whole of it)."""
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
        if use_env and _read_env_default(f, site, ctx, owner_line, result):
            continue
        if f.required:
            from_env = (f"; or set {' or '.join('$' + var.name for var in f.env)}"
                        if f.env else "")
            ctx.error(owner_line, f"{site}: missing required key '{f.key}' "
                                  f"({f.summary}; e.g. {f.key}: {inline_yaml(f.example)}"
                                  f"{from_env})")
        elif f.has_default:
            result.values[f.key] = f.default
    result.ok = ctx.error_count == errors_before
    return result


def _read_env_default(f: Field, site: Site, ctx: FileContext, owner_line: int,
                      result: FieldValues) -> bool:
    """Fill an absent key from its environment variables, as if `key: ${env:VAR}`
    were written on the owner's line (so the value is a secret and messages hide
    it); a section whose own fields read variables is filled from them. True
    when the environment gave a value (or a mistaken one, already reported)."""
    if isinstance(f.kind, Section):
        if not any(sub.env for sub in f.kind.fields):
            return False
        read = parse_fields({}, tuple(sub for sub in f.kind.fields if sub.env),
                            site.child(f.key), ctx, f.kind.owner, owner_line)
        if not read.from_env:
            return False
        if read.ok:
            result.values[f.key] = read.values
            result.from_env[f.key] = ", ".join(read.from_env.values())
        return True
    variable = next((var for var in f.env if ctx.environ.get(var.name, "").strip()), None)
    if variable is None:
        return False
    node = yaml.ScalarNode("tag:yaml.org,2002:str", f"${{env:{variable.name}}}",
                           _mark(owner_line), _mark(owner_line))
    child = site.child(f.key)
    parsed = (variable.kind or f.kind).parse(
        node, Site(f"{child.shown} (from ${variable.name})", child.key), ctx)
    result.from_env[f.key] = variable.name
    if parsed is not None:
        result.values[f.key] = parsed.value
    return True


def _mark(line: int) -> yaml.Mark:
    return yaml.Mark("environment", 0, max(0, line - 1), 0, None, 0)


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
    """A nested mapping with its own fields (e.g. `tls:`, a gadget's metric):
    its value is the values read (a dict), or what `build` makes of their
    Draft once `rules` found nothing wrong. With `keep_draft`, the value is
    the Draft itself, mistakes or not (they are recorded), so that the checks
    of what holds the mapping see every item. `constraints` are the rules as
    JSON Schema, for the schema."""

    fields: tuple[Field, ...]
    owner: str
    rules: tuple[Rule, ...] = ()
    build: Callable[[Draft], Any] | None = None
    constraints: tuple[dict[str, Any], ...] = ()
    keep_draft: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"a mapping of {', '.join(self.keys)}"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        entries = require_mapping(node, site, ctx, self.expected)
        if entries is None:
            return None
        errors_before = ctx.error_count
        read = parse_fields(entries, self.fields, site, ctx, self.owner, line_of(node),
                            use_env=False)
        draft = Draft(site, line_of(node), read.values, read.lines)
        if read.ok:
            for rule in self.rules:
                rule(draft, ctx)
        if self.keep_draft:
            return Parsed(draft)
        if ctx.error_count > errors_before:
            return None
        return Parsed(self.build(draft) if self.build else draft.values)

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.fields]

    def schema(self) -> dict[str, Any]:
        schema = object_schema(self.fields)
        if self.constraints:
            schema["allOf"] = list(self.constraints)
        return schema


def object_schema(fields: Sequence[Field]) -> dict[str, Any]:
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
