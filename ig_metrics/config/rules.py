"""Checks that involve more than one setting of an exporter: what a rule is
given (the draft of the settings, with their lines) and the rules every type
has (bounds that contradict each other). Each exporter type's module declares
its own (insecure vs TLS, certificate vs key, plaintext to a remote host)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ig_metrics.config.context import FileContext, Site


@dataclass(slots=True)
class ExporterDraft:
    """An exporter's settings once each field is read, before they become settings."""

    site: Site
    line: int
    values: dict[str, Any]
    lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


Rule = Callable[[ExporterDraft, FileContext], None]


def interval_bounds_in_order(draft: ExporterDraft, ctx: FileContext) -> None:
    limits = draft.values.get("limits", {})
    low, high = limits.get("min_interval"), limits.get("max_interval")
    if low is not None and high is not None and low > high:
        ctx.error(draft.line_of("limits"),
                  f"{draft.site.child('limits')}: min_interval ({low:g}s) is longer than "
                  f"max_interval ({high:g}s)")


COMMON_RULES: tuple[Rule, ...] = (interval_bounds_in_order,)


