"""The `retry:` settings of a push exporter (exponential backoff with jitter,
the Backoff they make), their table and their rule."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ig_metrics.config.context import FileContext
from ig_metrics.config.durations import format_duration
from ig_metrics.config.fieldkinds import DurationKind
from ig_metrics.config.fields import Field, Section
from ig_metrics.config.rules import ExporterDraft
from ig_metrics.retry.backoff import Backoff

DEFAULT_RETRY_INITIAL = 1.0      # seconds before the first retry

DEFAULT_RETRY_MAX = 30.0         # the longest wait between two attempts


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How a push exporter retries (`retry:`): exponential backoff with jitter."""

    initial: float = DEFAULT_RETRY_INITIAL     # seconds
    max: float = DEFAULT_RETRY_MAX             # seconds
    max_elapsed: float | None = None           # seconds a batch is retried; None: no limit

    def as_written(self) -> dict[str, Any]:
        written = {"initial": format_duration(self.initial), "max": format_duration(self.max)}
        if self.max_elapsed is not None:
            written["max_elapsed"] = format_duration(self.max_elapsed)
        return written

    def backoff(self, rng: random.Random | None = None) -> Backoff:
        """The schedule `retry: {initial, max}` says."""
        return Backoff(self.initial, self.max, (rng or random.Random()).random)


def retry_field() -> Field:
    return Field("retry", Section((
        Field("initial", DurationKind(),
              "The wait before the first retry; each further wait doubles, up to max, "
              "with a random jitter of -50%..+0%, so that many nodes do not retry in step.",
              "1s", default=DEFAULT_RETRY_INITIAL, default_shown=f"{DEFAULT_RETRY_INITIAL:g}s"),
        Field("max", DurationKind(),
              "The longest wait between two attempts (also the longest gRPC waits "
              "before it reconnects).",
              "30s", default=DEFAULT_RETRY_MAX, default_shown=f"{DEFAULT_RETRY_MAX:g}s"),
        Field("max_elapsed", DurationKind(),
              "How long after it was read a delta batch is still retried; then it is "
              "given up and counted as dropped (reason expired). Default: no limit (the "
              "queue's bounds apply). A cumulative exporter always sends its newest "
              "totals, so there is nothing to give up.",
              "1h"),
    ), owner="retry"),
        "How a failed export is retried: UNAVAILABLE, DEADLINE_EXCEEDED, "
        "RESOURCE_EXHAUSTED, HTTP 429/502/503/504 and connection errors are retried "
        "with exponential backoff (a collector's Retry-After or RetryInfo is honoured); "
        "other refusals (bad request, unauthenticated...) are logged once and not retried.",
        {"initial": "1s", "max": "30s"})


def retry_waits_grow(draft: ExporterDraft, ctx: FileContext) -> None:
    retry = draft.values.get("retry", {})
    if retry.get("initial", 0) > retry.get("max", float("inf")):
        ctx.error(draft.line_of("retry"),
                  f"{draft.site.child('retry')}: initial ({retry['initial']:g}s) is longer "
                  f"than max ({retry['max']:g}s); waits grow from initial up to max")
