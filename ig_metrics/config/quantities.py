"""Kinds of setting that hold numbers people write with units or bounds: counts,
sizes ("64MiB"), shares ("50%"), directories, and maps of names to counts."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.fieldkinds import HIDDEN, Kind, Parsed, read_text, with_env
from ig_metrics.config.yamlnodes import describe_node, line_of, mapping_entries, scalar_value

SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3,
              "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3}
SIZE_EXAMPLES = "65536, 512KiB, 64MiB or 1GB"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KkMmGg]i?[Bb]|[Bb])?\s*$")
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _whole_number(node: yaml.Node, site: Site, ctx: FileContext,
                  expected: str) -> tuple[str, int, bool] | None:
    """(text, line, from_env) of a scalar, YAML numbers included."""
    value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        ctx.error(line_of(node), f"{site}: expected {expected}, got {describe_node(node)}")
        return None
    if isinstance(value, int | float):
        return str(value), line_of(node), False
    text = read_text(node, site, ctx, expected)
    return (text.text, text.line, text.from_env) if text else None


@dataclass(frozen=True)
class IntKind(Kind):
    """A whole number of at least `minimum`."""

    minimum: int = 1

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"a whole number, at least {self.minimum}"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        read = _whole_number(node, site, ctx, self.expected)
        if read is None:
            return None
        text, line, from_env = read
        shown = HIDDEN if from_env else repr(text)
        if not re.fullmatch(r"\s*\d+\s*", text):
            ctx.error(line, f"{site}: expected {self.expected}, got {shown}")
            return None
        if int(text) < self.minimum:
            ctx.error(line, f"{site}: must be at least {self.minimum}, got {shown}")
            return None
        return Parsed(int(text))

    def schema(self) -> dict[str, Any]:
        return with_env({"type": "integer", "minimum": self.minimum})


@dataclass(frozen=True)
class WholeNumber(Kind):
    """A whole number written as a YAML number (never text: for files read
    without ${env:...}), within optional bounds; negative ones too."""

    minimum: int | None = None
    maximum: int | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        if self.minimum is not None and self.maximum is not None:
            return f"a whole number from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"a whole number, at least {self.minimum}"
        return "a whole number"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.error(line_of(node), f"{site}: expected {self.expected}, got {describe_node(node)}")
            return None
        if (self.minimum is not None and value < self.minimum) or \
                (self.maximum is not None and value > self.maximum):
            ctx.error(line_of(node), f"{site}: expected {self.expected}, got {value}")
            return None
        return Parsed(value)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


class SizeKind(Kind):
    """Bytes: a number with an optional unit (KB, MB, GB in 1000s; KiB, MiB, GiB in 1024s)."""

    expected = f"a size like {SIZE_EXAMPLES}"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        read = _whole_number(node, site, ctx, self.expected)
        if read is None:
            return None
        text, line, from_env = read
        match = _SIZE.match(text)
        if match is None:
            ctx.error(line, f"{site}: {HIDDEN if from_env else repr(text)} is not a size; "
                            f"write e.g. {SIZE_EXAMPLES}")
            return None
        size = int(float(match.group(1)) * SIZE_UNITS[(match.group(2) or "").lower()])
        if size < 1:
            ctx.error(line, f"{site}: must be at least 1 byte")
            return None
        return Parsed(size)

    def schema(self) -> dict[str, Any]:
        return with_env({"anyOf": [{"type": "integer", "minimum": 1},
                                   {"type": "string", "pattern": _SIZE.pattern}]})


class ShareKind(Kind):
    """A share of something, written as a percentage ("50%") or a fraction (0.5)."""

    expected = "a share like 50% or 0.5, more than 0 and at most 100%"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        read = _whole_number(node, site, ctx, self.expected)
        if read is None:
            return None
        text, line, from_env = read
        match = _SHARE.match(text)
        try:
            share = float(match.group(1)) / 100 if match else float(text)
        except ValueError:
            share = -1.0
        if not 0 < share <= 1:
            ctx.error(line, f"{site}: expected {self.expected}, "
                            f"got {HIDDEN if from_env else repr(text)}")
            return None
        return Parsed(share)

    def schema(self) -> dict[str, Any]:
        return with_env({"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                                   {"type": "string", "pattern": _SHARE.pattern}]})


class DirectoryKind(Kind):
    """A directory ig-metrics writes to; relative to the YAML file, created when
    missing, refused when it is something else."""

    expected = "a directory path"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        path = Path(os.path.abspath(ctx.base_dir / Path(text.text).expanduser()))
        if path.exists() and not path.is_dir():
            shown = HIDDEN if text.from_env else str(path)
            ctx.error(text.line, f"{site}: {shown} exists and is not a directory")
            return None
        return Parsed(path)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1}


@dataclass(frozen=True)
class CountMap(Kind):
    """A mapping of names (metric names) to whole numbers of at least `minimum`."""

    minimum: int
    expected: str = "a mapping of metric names to whole numbers"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        if not isinstance(node, yaml.MappingNode):
            ctx.error(line_of(node), f"{site}: expected {self.expected}, "
                                     f"got {describe_node(node)}")
            return None
        errors_before = ctx.error_count
        pairs = []
        count = IntKind(self.minimum)
        for key, entry in mapping_entries(node, ctx.error).items():
            parsed = count.parse(entry.value, site.child(key), ctx)
            if parsed is not None:
                pairs.append((key, parsed.value))
        return None if ctx.error_count > errors_before else Parsed(tuple(pairs))

    def schema(self) -> dict[str, Any]:
        return {"type": "object",
                "additionalProperties": {"type": "integer", "minimum": self.minimum}}
