"""When to try again after a failed export: exponential backoff with jitter, as
`retry: {initial, max}` says, never sooner than a collector's Retry-After."""

from __future__ import annotations

import random

from ig_metrics.config.model import RetrySettings

# A Retry-After longer than this is taken as this: a collector that asks for an
# hour is more likely broken than busy, and the exporter must come back.
RETRY_AFTER_CAP = 300.0


class Backoff:
    """The waits between consecutive failed attempts: initial, 2x, 4x... up to
    max, each shortened by a random share of up to half ("equal jitter"), so
    that many nodes that failed together do not retry together."""

    def __init__(self, retry: RetrySettings, rng: random.Random | None = None) -> None:
        self.retry = retry
        self.failures = 0
        self._rng = rng or random.Random()

    def next_wait(self, retry_after: float | None = None) -> float:
        ceiling = min(self.retry.max, self.retry.initial * 2 ** min(self.failures, 32))
        self.failures += 1
        wait = ceiling * self._rng.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, min(retry_after, RETRY_AFTER_CAP))
        return wait

    def reset(self) -> None:
        self.failures = 0
