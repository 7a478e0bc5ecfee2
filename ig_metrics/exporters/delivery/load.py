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

    Wider when exporting one interval took more than `share` of the interval,
    or the sampler's last reading took more than `share` of its own interval
    (the process is short of CPU: fewer exports free some). Narrower, one
    halving at a time, after CALM_EXPORTS exports that took less than a quarter
    of `share` and a sampler below it: at the narrower interval they would stay
    well under. A send that delivers a backlog of several intervals (after an
    outage or a restart) is judged by its time per interval: catching up is not
    load, and a wider interval would only make the next backlog larger.
    """

    def __init__(self, base: float, ceiling: float, share: float) -> None:
        self.base = base
        self.ceiling = max(base, ceiling)
        self.share = share
        self.interval = base
        self._calm = 0

    def observe(self, export_seconds: float, sampler_share: float = 0.0,
                intervals: int = 1) -> IntervalChange | None:
        """After a successful send of `intervals` (1 or more) intervals that took
        `export_seconds`; the change of interval it makes, if any."""
        per_interval = export_seconds / intervals
        slow = per_interval > self.share * self.interval
        if slow or sampler_share > self.share:
            self._calm = 0
            if self.interval >= self.ceiling:
                return None
            if not slow:
                why = f"the sampler's reading took {sampler_share:.0%} of its interval"
            elif intervals == 1:
                why = f"an export took {export_seconds:.2f}s of a {self.interval:g}s interval"
            else:
                why = (f"sending {intervals} intervals took {per_interval:.2f}s each, of a "
                       f"{self.interval:g}s interval")
            return self._change(min(self.ceiling, self.interval * 2), why)
        if per_interval < self.share * self.interval / 4 and sampler_share < self.share:
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
