"""The standard OTEL_EXPORTER_OTLP_* variables as defaults of OTLP settings that a
template leaves out: their names (the metrics-specific one wins) and the kinds
that read their formats (milliseconds, `k=v,k2=v2` headers, a base URL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import yaml

from ig_metrics.config import addresses
from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.fieldkinds import (
    HIDDEN,
    AddressKind,
    Kind,
    Parsed,
    read_text,
)

PREFIX = "OTEL_EXPORTER_OTLP_"


def otel_variables(suffix: str) -> tuple[str, ...]:
    """OTEL_EXPORTER_OTLP_METRICS_<suffix> first, then OTEL_EXPORTER_OTLP_<suffix>."""
    return (f"{PREFIX}METRICS_{suffix}", f"{PREFIX}{suffix}")


class MillisecondsKind(Kind):
    """OTEL_EXPORTER_OTLP_TIMEOUT: a whole number of milliseconds, as the
    specification says (the Python SDK alone reads it as seconds)."""

    expected = "a whole number of milliseconds"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        if not text.text.strip().isdigit() or int(text.text) == 0:
            ctx.error(text.line, f"{site}: {text.quoted()} is not a positive whole number "
                                 "of milliseconds")
            return None
        return Parsed(int(text.text) / 1000)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclass(frozen=True)
class HeaderListKind(Kind):
    """OTEL_EXPORTER_OTLP_HEADERS: `name=value,name2=value2`, values percent-encoded."""

    lowercase: bool
    expected: str = "name=value pairs separated by commas"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        pairs = []
        for index, item in enumerate(filter(str.strip, text.text.split(",")), 1):
            name, equals, value = item.partition("=")
            name = name.strip()
            if not equals or not name:
                # Never quote the item: it may hold a token.
                ctx.error(text.line, f"{site}: item {index} is not name=value "
                                     f"(the value is not shown)")
                return None
            pairs.append((name.lower() if self.lowercase else name, unquote(value.strip())))
        return Parsed(tuple(pairs))

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


class TemporalityPreferenceKind(Kind):
    """OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, any case. `lowmemory`
    means delta for counters and histograms, which is all a gadget exports."""

    expected = "cumulative, delta or lowmemory"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        text = read_text(node, site, ctx, self.expected)
        if text is None:
            return None
        chosen = text.text.strip().lower()
        if chosen not in ("cumulative", "delta", "lowmemory"):
            ctx.error(text.line, f"{site}: {text.quoted()} is not {self.expected}")
            return None
        return Parsed("cumulative" if chosen == "cumulative" else "delta")

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


def parse_http_base_url(text: str) -> addresses.Endpoint:
    """OTEL_EXPORTER_OTLP_ENDPOINT for HTTP is a base URL: /v1/metrics is always
    appended to its path (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is used as written)."""
    base = text.strip().rstrip("/")
    return addresses.parse_http_endpoint(f"{base}{addresses.DEFAULT_OTLP_HTTP_PATH}")


HTTP_BASE_URL = AddressKind("OTLP/HTTP base URL", addresses.HTTP_FORMS, parse_http_base_url,
                            r"^https?://")

__all__ = ["HIDDEN", "HTTP_BASE_URL", "HeaderListKind", "MillisecondsKind",
           "TemporalityPreferenceKind", "otel_variables"]
