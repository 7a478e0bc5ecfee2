"""Load-driven export interval: doubled, step by step, while exports take more
than a share of it or the sampler overruns, halved back once load falls."""

from __future__ import annotations

from dataclasses import dataclass

CALM_EXPORTS = 3        # quiet exports in a row before the interval narrows


@dataclass(frozen=True, slots=True)
class IntervalChange:
    before: float
    after: float
    why: str


class LoadGovernor:
    """Keeps one exporter's interval between `base` and `ceiling`.

    Wider when the last export took more than `share` of the interval, or the
    sampler's last reading took more than `share` of its own interval (the
    process is short of CPU: fewer exports free some). Narrower, one halving at
    a time, after CALM_EXPORTS exports that took less than a quarter of `share`
    and a sampler below it: at the narrower interval they would stay well under.
    """

    def __init__(self, base: float, ceiling: float, share: float) -> None:
        self.base = base
        self.ceiling = max(base, ceiling)
        self.share = share
        self.interval = base
        self._calm = 0

    def observe(self, export_seconds: float, sampler_share: float = 0.0) -> IntervalChange | None:
        if export_seconds > self.share * self.interval or sampler_share > self.share:
            self._calm = 0
            if self.interval >= self.ceiling:
                return None
            why = (f"an export took {export_seconds:.2f}s of a {self.interval:g}s interval"
                   if export_seconds > self.share * self.interval else
                   f"the sampler's reading took {sampler_share:.0%} of its interval")
            return self._change(min(self.ceiling, self.interval * 2), why)
        if export_seconds < self.share * self.interval / 4 and sampler_share < self.share:
            self._calm += 1
        else:
            self._calm = 0
        if self._calm >= CALM_EXPORTS and self.interval > self.base:
            self._calm = 0
            return self._change(max(self.base, self.interval / 2), "load fell")
        return None

    def _change(self, interval: float, why: str) -> IntervalChange:
        change = IntervalChange(self.interval, interval, why)
        self.interval = interval
        return change
