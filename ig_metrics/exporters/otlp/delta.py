"""Delta temporality for one exporter: the change of every cumulative series
since that exporter's previous successful export, computed from the cumulative
snapshots it was given."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ig_metrics.model.snapshot import GAUGE, Attributes, HistogramValue, MetricData, Point, Snapshot

Value = int | float | HistogramValue


@dataclass(frozen=True, slots=True)
class Baseline:
    """The cumulative points last delivered, and when they were read."""

    time_ns: int
    points: dict[str, dict[Attributes, Point]]     # metric name -> attributes -> point


@dataclass(frozen=True, slots=True)
class PendingDelta:
    """A delta snapshot ready to send, and the baseline that becomes current
    once it was delivered."""

    snapshot: Snapshot
    baseline: Baseline


class DeltaTracker:
    """Turns consecutive cumulative snapshots into deltas.

    A series is identified by metric name, attributes and start time:
    - seen for the first time, or with a new start time (it restarted): its whole
      cumulative value, over [its start time, snapshot time];
    - seen before: current minus previous, over [the previous export's snapshot
      time, snapshot time]; a value that went down without a new start time is
      treated as a restart as well;
    - unchanged since the previous export: no point at all (a missing delta point
      means zero, as for the SDK's own delta sums); the next change is measured
      from the last export, so intervals stay contiguous.
    Gauges are passed through as they are. The baseline only moves on `commit`,
    which the exporter calls after a successful export: an interval whose export
    failed is folded into the next one instead of being lost.
    """

    def __init__(self) -> None:
        self._baseline = Baseline(time_ns=0, points={})

    def prepare(self, snapshot: Snapshot) -> PendingDelta:
        previous = self._baseline
        baseline: dict[str, dict[Attributes, Point]] = {}
        metrics: list[MetricData] = []
        for data in snapshot.metrics:
            if data.info.kind == GAUGE:
                metrics.append(data)
                continue
            before = previous.points.get(data.info.name, {})
            now = baseline[data.info.name] = {}
            points: list[Point] = []
            for point in data.points:
                now[point.attributes] = point
                last = before.get(point.attributes)
                if last is point:
                    continue          # the very point delivered last: unchanged
                delta = _delta_point(point, last, previous.time_ns)
                if delta is not None:
                    points.append(delta)
            metrics.append(MetricData(info=data.info, points=tuple(points)))
        return PendingDelta(snapshot=replace(snapshot, metrics=tuple(metrics)),
                            baseline=Baseline(time_ns=snapshot.time_ns, points=baseline))

    def commit(self, pending: PendingDelta) -> None:
        self._baseline = pending.baseline


def _delta_point(point: Point, before: Point | None, before_time_ns: int) -> Point | None:
    if before is None or before.start_time_ns != point.start_time_ns:
        return point if not _is_zero(point.value) else None
    difference = _subtract(point.value, before.value)
    if difference is None:            # went down: the series restarted unnoticed
        return point
    if _is_zero(difference):
        return None
    return Point(attributes=point.attributes, value=difference, start_time_ns=before_time_ns)


def _subtract(now: Value, before: Value) -> Value | None:
    """now - before, or None when any part of it went down."""
    if isinstance(now, HistogramValue):
        if not isinstance(before, HistogramValue) or len(now.counts) != len(before.counts):
            return None
        counts = tuple(a - b for a, b in zip(now.counts, before.counts))
        if any(count < 0 for count in counts) or now.count < before.count:
            return None
        return HistogramValue(counts=counts, sum=now.sum - before.sum,
                              count=now.count - before.count)
    if isinstance(before, HistogramValue) or now < before:
        return None
    return now - before


def _is_zero(value: Value) -> bool:
    if isinstance(value, HistogramValue):
        return value.count == 0
    return value == 0
