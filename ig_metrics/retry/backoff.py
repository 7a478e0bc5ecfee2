"""When to try again after a failure: exponential backoff with jitter, never
sooner than a peer's Retry-After (an exporter's collector asks for one; the
Kubernetes pod watch gives its own bounds)."""

from __future__ import annotations

import random
from collections.abc import Callable

# A Retry-After longer than this is taken as this: a collector that asks for an
# hour is more likely broken than busy, and the exporter must come back.
RETRY_AFTER_CAP = 300.0


class Backoff:
    """The waits between consecutive failed attempts: initial, 2x, 4x... up to
    maximum, each shortened by a random share of up to half ("equal jitter"), so
    that many nodes that failed together do not retry together. The one
    schedule of every retry here: exporters (`retry:`, `RetrySettings.backoff`)
    and the Kubernetes pod watch."""

    def __init__(self, initial: float, maximum: float,
                 jitter: Callable[[], float] = random.random) -> None:
        self.initial, self.maximum = initial, maximum
        self.failures = 0
        self._jitter = jitter

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


