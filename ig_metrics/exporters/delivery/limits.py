"""Cardinality limits of one exporter: a metric's series beyond `max_series` are
folded into one series with the attribute otel.metric.overflow=true, whose
cumulative value never goes down, and the folded points are counted."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ig_metrics.config.model import LimitSettings
from ig_metrics.model.snapshot import GAUGE, Attributes, HistogramValue, MetricData, Point, Snapshot

OVERFLOW_ATTRIBUTES: Attributes = (("otel.metric.overflow", True),)
Value = int | float | HistogramValue


@dataclass
class _MetricState:
    """Which series of one metric are exported as themselves, and what the
    overflow series has absorbed so far."""

    admitted: set[Attributes] = field(default_factory=set)
    folded: dict[Attributes, tuple[int, Value]] = field(default_factory=dict)  # -> (start, value)
    retired: Value | None = None      # folded series that vanished or restarted
    start_ns: int = 0                 # the overflow series' start time
    warned: bool = False


class SeriesLimiter:
    """Applies `limits` to each snapshot an exporter accepts.

    The series seen first are kept (as the OpenTelemetry SDK's cardinality limit
    does); a later one is folded for as long as it lives, even if a kept one
    vanishes meanwhile, because moving its value out of the overflow series would
    make that series go down. The overflow series of a counter or histogram is
    what every folded series counted, those that vanished included; of a gauge,
    the last folded value.
    """

    def __init__(self, limits: LimitSettings) -> None:
        self.limits = limits
        self._states: dict[str, _MetricState] = {}
        self.active = limits.max_series is not None or bool(limits.max_series_by_metric)

    def apply(self, snapshot: Snapshot) -> tuple[Snapshot, int, list[str]]:
        """(limited snapshot, points folded, metrics that overflowed for the first
        time). The snapshot itself is returned when no metric is over its limit."""
        if not self.active:
            return snapshot, 0, []
        folded_points = 0
        newly: list[str] = []
        changed = False
        metrics = []
        for data in snapshot.metrics:
            limit = self.limits.series_limit(data.info.name)
            state = self._states.get(data.info.name)
            if limit is None or (state is None and len(data.points) < limit):
                if limit is not None:       # remember who came first
                    self._states[data.info.name] = _MetricState(
                        {point.attributes for point in data.points})
                metrics.append(data)
                continue
            if state is None:
                state = self._states[data.info.name] = _MetricState()
            limited, folded = self._limit(data, state, limit)
            folded_points += folded
            if folded and not state.warned:
                state.warned = True
                newly.append(data.info.name)
            changed |= limited is not data
            metrics.append(limited)
        if not changed:
            return snapshot, folded_points, newly
        return replace(snapshot, metrics=tuple(metrics)), folded_points, newly

    def _limit(self, data: MetricData, state: _MetricState, limit: int) -> tuple[MetricData, int]:
        present = {point.attributes for point in data.points}
        state.admitted &= present
        gauge = data.info.kind == GAUGE
        for attributes in [key for key in state.folded if key not in present]:
            _, gone = state.folded.pop(attributes)
            if not gauge:
                state.retired = _add(state.retired, gone)
        kept: list[Point] = []
        last_gauge: Point | None = None
        for point in data.points:
            key = point.attributes
            if key in state.admitted or (key not in state.folded
                                         and len(state.admitted) < limit - 1):
                state.admitted.add(key)
                kept.append(point)
                continue
            before = state.folded.get(key)
            if before is not None and before[0] != point.start_time_ns and not gauge:
                state.retired = _add(state.retired, before[1])     # it restarted
            if not state.start_ns:
                state.start_ns = point.start_time_ns
            state.folded[key] = (point.start_time_ns, point.value)
            last_gauge = point
        if not state.folded and state.retired is None:
            return (data if len(kept) == len(data.points) else
                    MetricData(data.info, tuple(kept))), 0
        if gauge:
            value: Value | None = last_gauge.value if last_gauge else None
        else:
            value = state.retired
            for _, folded_value in state.folded.values():
                value = _add(value, folded_value)
        if value is not None:
            kept.append(Point(OVERFLOW_ATTRIBUTES, value, state.start_ns))
        return MetricData(data.info, tuple(kept)), len(state.folded)


def _add(total: Value | None, value: Value) -> Value:
    if total is None:
        return value
    if isinstance(total, HistogramValue) and isinstance(value, HistogramValue):
        return HistogramValue(tuple(a + b for a, b in zip(total.counts, value.counts)),
                              total.sum + value.sum, total.count + value.count)
    if isinstance(total, HistogramValue) or isinstance(value, HistogramValue):
        # what `+` raises for a histogram and a number
        raise TypeError(f"cannot add {type(value).__name__} to {type(total).__name__}")
    return total + value
