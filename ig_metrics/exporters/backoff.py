"""When to try again after a failure: exponential backoff with jitter (for an
export, as `retry: {initial, max}` says, never sooner than a collector's
Retry-After; for the pod watch, its own bounds), and the `retry:` settings."""

from __future__ import annotations

from dataclasses import dataclass
import random
from collections.abc import Callable
from typing import Any

from ig_metrics.config.durations import format_duration
from ig_metrics.config.fieldkinds import DurationKind
from ig_metrics.config.fields import Field, Section


# A Retry-After longer than this is taken as this: a collector that asks for an
# hour is more likely broken than busy, and the exporter must come back.
RETRY_AFTER_CAP = 300.0

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


class Backoff:
    """The waits between consecutive failed attempts: initial, 2x, 4x... up to
    maximum, each shortened by a random share of up to half ("equal jitter"), so
    that many nodes that failed together do not retry together. The one
    schedule of every retry here: exporters (`retry:`, `Backoff.of`) and the
    Kubernetes pod watch."""

    def __init__(self, initial: float, maximum: float,
                 jitter: Callable[[], float] = random.random) -> None:
        self.initial, self.maximum = initial, maximum
        self.failures = 0
        self._jitter = jitter

    @classmethod
    def of(cls, retry: RetrySettings, rng: random.Random | None = None) -> Backoff:
        """The schedule `retry: {initial, max}` says."""
        return cls(retry.initial, retry.max, (rng or random.Random()).random)

    def next_wait(self, retry_after: float | None = None) -> float:
        """The wait before the next attempt, never shorter than a collector's
        Retry-After (capped at RETRY_AFTER_CAP)."""
        ceiling = min(self.maximum, self.initial * 2 ** min(self.failures, 32))
        self.failures += 1
        wait = ceiling * (0.5 + self._jitter() / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, RETRY_AFTER_CAP))
        return wait

    def reset(self) -> None:
        self.failures = 0


