"""The kinds of value a setting holds: how each is read from a YAML node (after
`${env:...}` expansion, one message per mistake) and how JSON Schema writes it."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ig_metrics.config import addresses
from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.durations import DURATION_EXAMPLES, parse_duration
from ig_metrics.config.envvars import ENV_SYNTAX_HELP, expand_env
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.config.yamlnodes import describe_node, line_of, mapping_entries, scalar_value

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
HIDDEN = "(a value from the environment, not shown)"
ENV_REFERENCE = {"$ref": "#/$defs/envReference"}


@dataclass(frozen=True, slots=True)
class Parsed:
    value: Any        # what the settings dataclass is given


@dataclass(frozen=True, slots=True)
class Text:
    """A string value after env expansion."""

    text: str
    line: int
    from_env: bool

    def quoted(self) -> str:
        """The value for a message; never the value itself if it came from env."""
        return HIDDEN if self.from_env else repr(self.text)


def read_text(node: yaml.Node, site: Site, ctx: FileContext, expected: str) -> Text | None:
    """A string scalar with its env references expanded, or None (problem recorded)."""
    line = line_of(node)
    value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, str):
        ctx.error(line, f"{site}: expected {expected}, got {describe_node(node)}")
        return None
    if not ctx.expand_env:
        return Text(value, line, False)
    expansion = expand_env(value, ctx.environ)
    for token in expansion.malformed:
        ctx.error(line, f"{site}: malformed reference '{token}'; {ENV_SYNTAX_HELP}")
    for name in expansion.missing:
        ctx.error(line, f"{site}: environment variable {name} is not set and has no "
                        f"default; set it or write ${{env:{name}:-default}}")
    if not expansion.ok:
        return None
    if expansion.from_env:
        ctx.secrets.add(site.key)
    return Text(expansion.text, line, expansion.from_env)


def with_env(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or a string holding an ${env:...} reference (checked at load time)."""
    return {"anyOf": [schema, ENV_REFERENCE]}


def without_env(schema: Any) -> Any:
    """`schema` with every with_env() alternative taken out: for a file read
    without ${env:...} expansion (FileContext.expand_env false)."""
    if isinstance(schema, list):
        return [without_env(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("anyOf", [])[-1:] == [ENV_REFERENCE]:
        rest = [without_env(alternative) for alternative in schema["anyOf"][:-1]]
        others = {key: without_env(value) for key, value in schema.items() if key != "anyOf"}
        return {**others, **rest[0]} if len(rest) == 1 else {**others, "anyOf": rest}
    return {key: without_env(value) for key, value in schema.items()}


class Kind(ABC):
    """One kind of setting value."""

    expected: str = "a value"        # completes "expected ..." in messages

    @abstractmethod
    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        """The value, or None after recording at least one problem."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12) of the value as written in YAML."""


@dataclass(frozen=True)
class PatternText(Kind):
    """Text in which `pattern` is found (re.search, as JSON Schema's `pattern`:
    anchor it with ^...$ for the whole text); `rule` says what is valid."""

    pattern: str
    rule: str
    expected: str = "text"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        if not re.search(self.pattern, text.text):
            ctx.error(text.line, f"{site}: {text.quoted()} is not valid; {self.rule}")
            return None
        return Parsed(text.text)

    def schema(self) -> dict[str, Any]:
        return with_env({"type": "string", "pattern": self.pattern})


WORDS = PatternText(r"\S", "write some text")     # text that is not empty


@dataclass(frozen=True)
class ListOf(Kind):
    """A list whose items `item` reads, each at its own site (`hooks[0]`).
    The items read without mistakes are the value (the mistakes are recorded)."""

    item: Kind
    noun: str

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"a list of {self.noun}"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        if not isinstance(node, yaml.SequenceNode):
            ctx.error(line_of(node), f"{site}: expected {self.expected}, got {describe_node(node)}")
            return None
        items = [self.item.parse(item, site.item(index), ctx)
                 for index, item in enumerate(node.value)]
        return Parsed(tuple(item.value for item in items if item is not None))

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.schema()}


class TextKind(Kind):
    expected = "text"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        text = read_text(node, site, ctx, self.expected)
        return Parsed(text.text) if text else None

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclass(frozen=True)
class Choice(Kind):
    options: tuple[str, ...]
    noun: str = "value"

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.options)

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        if text.text not in self.options:
            hint = "" if text.from_env else did_you_mean(text.text, self.options)
            ctx.error(text.line, f"{site}: unknown {self.noun} {text.quoted()}{hint or '.'} "
                                 f"Choose one of: {', '.join(self.options)}")
            return None
        return Parsed(text.text)

    def schema(self) -> dict[str, Any]:
        return with_env({"enum": list(self.options)})


class DurationKind(Kind):
    expected = f"a duration like {DURATION_EXAMPLES}"
    PATTERN = r"^\s*(?!0*\.?0*\s*(ms|s|m|h)\s*$)(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h)\s*$"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            ctx.error(line_of(node), f"{site}: {value} has no unit; write {value}s for "
                                     f"seconds (durations look like {DURATION_EXAMPLES})")
            return None
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        try:
            seconds = parse_duration(text.text)
        except ValueError as error:
            reason = (f"{HIDDEN} is not a duration; write a number with a unit, e.g. "
                      f"{DURATION_EXAMPLES}") if text.from_env else str(error)
            ctx.error(text.line, f"{site}: {reason}")
            return None
        if seconds <= 0:
            ctx.error(text.line, f"{site}: must be more than zero, got {text.quoted()}")
            return None
        return Parsed(seconds)

    def schema(self) -> dict[str, Any]:
        return with_env({"type": "string", "pattern": self.PATTERN})


class FlagKind(Kind):
    expected = "true or false"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool):
            return Parsed(value)
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        if text.text.strip().lower() not in ("true", "false"):
            ctx.error(text.line, f"{site}: expected true or false, got {text.quoted()}")
            return None
        return Parsed(text.text.strip().lower() == "true")

    def schema(self) -> dict[str, Any]:
        return with_env({"type": "boolean"})


@dataclass(frozen=True)
class AddressKind(Kind):
    """A listen address or an endpoint; `parser` says what is valid."""

    what: str
    forms: str
    parser: Callable[[str], Any]
    pattern: str

    @property
    def expected(self) -> str:  # type: ignore[override]
        return self.forms

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        bare = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(bare, int) and not isinstance(bare, bool):
            ctx.error(line_of(node), f"{site}: {bare} is a bare number; "
                                     f"expected {self.forms}")
            return None
        text = read_text(node, site, ctx, self.forms)
        if text is None:
            return None
        try:
            address = self.parser(text.text)
        except ValueError as error:
            reason = "" if text.from_env else f": {error}"
            ctx.error(text.line, f"{site}: {text.quoted()} is not a valid {self.what}"
                                 f"{reason}; expected {self.forms}")
            return None
        if getattr(address, "has_credentials", False):
            ctx.secrets.add(site.key)    # user:password@ in a URL is a secret
        return Parsed(address)

    def schema(self) -> dict[str, Any]:
        return with_env({"type": "string", "pattern": self.pattern})


_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"

LISTEN_ADDRESS = AddressKind("listen address", addresses.LISTEN_FORMS,
                             addresses.parse_listen, rf"^{_HOST}?:{_PORT}$")
GRPC_ENDPOINT = AddressKind("otlp-grpc endpoint", addresses.GRPC_FORMS,
                            addresses.parse_grpc_endpoint,
                            rf"^(https?://([^@/]+@)?)?{_HOST}:{_PORT}/?$")
HTTP_ENDPOINT = AddressKind("otlp-http endpoint", addresses.HTTP_FORMS,
                            addresses.parse_http_endpoint,
                            rf"^https?://([^@/]+@)?{_HOST}(:{_PORT})?([/?][^#]*)?$")


@dataclass(frozen=True)
class StringMap(Kind):
    """A mapping of names to text (e.g. headers); values may be secrets."""

    key_pattern: str
    key_rule: str                      # the pattern in words
    secret_values: bool = False
    lowercase_keys: bool = False
    expected: str = "a mapping of names to text"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        if not isinstance(node, yaml.MappingNode):
            ctx.error(line_of(node), f"{site}: expected {self.expected}, got {describe_node(node)}")
            return None
        errors_before = ctx.error_count
        pairs: list[tuple[str, str]] = []
        for key, entry in mapping_entries(node, ctx.error).items():
            child = site.child(key)
            if not re.fullmatch(self.key_pattern, key):
                ctx.error(entry.line, f"{child}: invalid name '{key}'; {self.key_rule}")
            elif self.lowercase_keys and key != key.lower():
                ctx.error(entry.line, f"{child}: gRPC metadata names must be lowercase; "
                                      f"write '{key.lower()}'")
            if self.secret_values:
                ctx.secrets.add(child.key)
            text = read_text(entry.value, child, ctx, "text")
            if text is not None:
                pairs.append((key, text.text))
        if ctx.error_count > errors_before:
            return None
        return Parsed(tuple(pairs))

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "propertyNames": {"pattern": self.key_pattern},
                "additionalProperties": {"type": "string"}}


class FilePathKind(Kind):
    """A file that must exist; relative paths are relative to the YAML file."""

    expected = "a file path"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        path = Path(os.path.abspath(ctx.base_dir / Path(text.text).expanduser()))
        shown = HIDDEN if text.from_env else str(path)
        if not path.exists():
            ctx.error(text.line, f"{site}: file not found: {shown} (a relative path is "
                                 "relative to the directory of the file that names it)")
            return None
        if not path.is_file():
            ctx.error(text.line, f"{site}: {shown} is not a file")
            return None
        return Parsed(path)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1}


@dataclass(frozen=True)
class NameList(Kind):
    """A non-empty list of names without repeats: (name, line, from_env) each.

    A name read from the environment is shown only once it matches a template
    (whose name is public anyway); messages about an unmatched one hide it.
    """

    noun: str
    example: str
    expected: str = "a list of names"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        if isinstance(node, yaml.ScalarNode) and scalar_value(node) is None:
            node = yaml.SequenceNode("tag:yaml.org,2002:seq", [], node.start_mark, node.end_mark)
        if not isinstance(node, yaml.SequenceNode):
            ctx.error(line_of(node), f"{site}: expected a list of {self.noun} names like "
                                     f"{self.example}, got {describe_node(node)}")
            return None
        if not node.value:
            ctx.error(line_of(node), f"{site}: lists no {self.noun}s; name at least one, "
                                     f"e.g. {self.example}")
            return None
        errors_before = ctx.error_count
        items: list[tuple[str, int, bool]] = []
        seen: set[str] = set()
        for item in node.value:
            text = read_text(item, site, ctx, f"{self.noun} name")
            if text is None:
                continue
            if text.text in seen:
                ctx.error(text.line, f"{site}: {text.quoted()} is listed twice")
                continue
            seen.add(text.text)
            items.append((text.text, text.line, text.from_env))
        if ctx.error_count > errors_before:
            return None
        return Parsed(tuple(items))

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}, "minItems": 1,
                "uniqueItems": True}

