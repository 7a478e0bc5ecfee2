"""DeltaTracker's rules on hand-made cumulative snapshots (the OTLP tests check
the same deltas on the wire)."""

from __future__ import annotations

from ig_metrics.exporters.otlp.delta import DeltaTracker
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)

START = 1_000
SENT = MetricInfo("tcp.sent", COUNTER, "By", "")
LOAD = MetricInfo("load", GAUGE, "1", "")
LATENCY = MetricInfo("latency", HISTOGRAM, "s", "", (1.0, 2.0))
PID1, PID2 = (("process.pid", 1),), (("process.pid", 2),)


def snapshot(seq: int, *points: Point, gauge: float = 0.5,
             histogram: HistogramValue | None = None) -> Snapshot:
    metrics = [MetricData(SENT, points), MetricData(LOAD, (Point((), gauge, START),))]
    if histogram is not None:
        metrics.append(MetricData(LATENCY, (Point(PID1, histogram, START),)))
    return Snapshot(seq, START + seq * 100, "t", (), tuple(metrics))


def delivered(tracker: DeltaTracker, snap: Snapshot) -> dict:
    pending = tracker.prepare(snap)
    tracker.commit(pending)
    return {(data.info.name, point.attributes): (point.value, point.start_time_ns)
            for data in pending.snapshot.metrics for point in data.points}


def test_first_sight_is_the_whole_value_from_the_series_start():
    tracker = DeltaTracker()
    got = delivered(tracker, snapshot(1, Point(PID1, 10, START), Point(PID2, 0, START)))
    assert got == {("tcp.sent", PID1): (10, START), ("load", ()): (0.5, START)}


def test_growth_is_measured_from_the_previous_export():
    tracker = DeltaTracker()
    delivered(tracker, snapshot(1, Point(PID1, 10, START), Point(PID2, 0, START)))
    got = delivered(tracker, snapshot(2, Point(PID1, 15, START), Point(PID2, 4, START),
                                      gauge=0.7))
    assert got == {("tcp.sent", PID1): (5, START + 100), ("tcp.sent", PID2): (4, START + 100),
                   ("load", ()): (0.7, START)}


def test_a_value_that_went_down_without_a_new_start_is_a_restart():
    tracker = DeltaTracker()
    delivered(tracker, snapshot(1, Point(PID1, 10, START)))
    got = delivered(tracker, snapshot(2, Point(PID1, 3, START)))
    assert got[("tcp.sent", PID1)] == (3, START)


def test_the_same_snapshot_twice_sends_only_gauges():
    tracker = DeltaTracker()
    first = snapshot(1, Point(PID1, 10, START))
    delivered(tracker, first)
    assert delivered(tracker, first) == {("load", ()): (0.5, START)}


def test_an_uncommitted_delta_is_sent_again_with_the_next():
    tracker = DeltaTracker()
    delivered(tracker, snapshot(1, Point(PID1, 10, START)))
    tracker.prepare(snapshot(2, Point(PID1, 12, START)))          # export failed
    got = delivered(tracker, snapshot(3, Point(PID1, 20, START)))
    assert got[("tcp.sent", PID1)] == (10, START + 100)


def test_an_expired_series_is_forgotten():
    tracker = DeltaTracker()
    delivered(tracker, snapshot(1, Point(PID1, 10, START)))
    delivered(tracker, snapshot(2))                                  # expired
    got = delivered(tracker, snapshot(3, Point(PID1, 2, START + 250)))
    assert got[("tcp.sent", PID1)] == (2, START + 250)


def test_histograms_subtract_bucket_by_bucket():
    tracker = DeltaTracker()
    delivered(tracker, snapshot(1, histogram=HistogramValue((1, 2, 0), 3.5, 3)))
    got = delivered(tracker, snapshot(2, histogram=HistogramValue((1, 5, 1), 10.0, 7)))
    assert got[("latency", PID1)] == (HistogramValue((0, 3, 1), 6.5, 4), START + 100)
