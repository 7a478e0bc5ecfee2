"""Quotas and schedules on their own: overflow folding that never goes
backwards, the backoff's waits, the health state machine, the load governor and
the export-quality metrics."""

from __future__ import annotations

import random

from ig_metrics.config.model import LimitSettings
from ig_metrics.exporters.base import ExportFailure, Health
from ig_metrics.exporters.delivery.health import HealthTracker
from ig_metrics.exporters.delivery.limits import OVERFLOW_ATTRIBUTES, SeriesLimiter
from ig_metrics.exporters.delivery.load import CALM_EXPORTS, LoadGovernor
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.exporters.delivery.telemetry import HEALTH_STATES, ExporterStats, ExportTelemetry
from ig_metrics.model.snapshot import (
    COUNTER,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)
from ig_metrics.retry.backoff import RETRY_AFTER_CAP

SENT = MetricInfo("tcp.sent", COUNTER, "By", "")
LATENCY = MetricInfo("latency", HISTOGRAM, "s", "", (1.0,))


def pid(n: int):
    return (("process.pid", n),)


def snap(seq: int, values: dict[int, int], starts: dict[int, int] | None = None) -> Snapshot:
    points = tuple(Point(pid(n), value, (starts or {}).get(n, 1)) for n, value in values.items())
    return Snapshot(seq, seq * 100, "t", (), (MetricData(SENT, points),))


def exported(snapshot: Snapshot) -> dict:
    return {point.attributes: point.value for point in snapshot.metrics[0].points}


def test_under_the_limit_the_snapshot_passes_untouched():
    limiter = SeriesLimiter(LimitSettings(max_series=10))
    original = snap(1, {1: 5, 2: 6})
    assert limiter.apply(original) == (original, 0, [])


def test_the_first_series_are_kept_and_the_rest_fold_into_one():
    limiter = SeriesLimiter(LimitSettings(max_series=3))
    limited, folded, newly = limiter.apply(snap(1, {1: 10, 2: 20, 3: 30, 4: 40}))
    assert exported(limited) == {pid(1): 10, pid(2): 20, OVERFLOW_ATTRIBUTES: 70}
    assert (folded, newly) == (2, ["tcp.sent"])


def test_the_overflow_series_never_goes_backwards():
    limiter = SeriesLimiter(LimitSettings(max_series=2))
    values = []
    for seq, current in enumerate([
            {1: 10, 2: 20, 3: 30},           # 2 and 3 folded: 50
            {1: 11, 3: 31},                  # 2 vanished (expired): its 20 stays counted
            {1: 12, 3: 32, 4: 5},            # a slot is free, but 4 arrives after 3: folded
            {1: 12, 3: 1, 4: 6}],            # 3 restarted (new start): its 32 stays
            start=1):
        starts = {3: 99} if seq == 4 else None
        limited, _, _ = limiter.apply(snap(seq, current, starts))
        values.append(exported(limited)[OVERFLOW_ATTRIBUTES])
    assert values == [50, 51, 57, 59]
    assert values == sorted(values)


def test_a_metric_limit_overrides_the_exporter_limit_and_histograms_add_up():
    limits = LimitSettings(max_series=100, max_series_by_metric=(("latency", 2),))
    limiter = SeriesLimiter(limits)
    histograms = tuple(Point(pid(n), HistogramValue((n, 1), n + 0.5, n + 1), 1)
                       for n in (1, 2, 3))
    snapshot = Snapshot(1, 100, "t", (), (MetricData(LATENCY, histograms),))
    limited, folded, _ = limiter.apply(snapshot)
    points = {point.attributes: point.value for point in limited.metrics[0].points}
    assert points[OVERFLOW_ATTRIBUTES] == HistogramValue((5, 2), 6.0, 7)
    assert folded == 2


def test_backoff_doubles_up_to_max_with_jitter_and_honours_retry_after():
    backoff = RetrySettings(initial=1.0, max=8.0).backoff(random.Random(1))
    waits = [backoff.next_wait() for _ in range(6)]
    for wait, ceiling in zip(waits, [1, 2, 4, 8, 8, 8]):
        assert ceiling / 2 <= wait <= ceiling
    assert backoff.next_wait(retry_after=20.0) == 20.0
    assert backoff.next_wait(retry_after=10_000.0) == RETRY_AFTER_CAP
    backoff.reset()
    assert backoff.next_wait() <= 1.0


def test_health_goes_through_every_state():
    tracker = HealthTracker()
    unavailable = ExportFailure("gRPC UNAVAILABLE", "unavailable")
    assert tracker.health is Health.STARTING
    assert tracker.succeeded(troubled=False, backlog=False) is Health.HEALTHY
    assert tracker.failed(unavailable) is Health.DEGRADED
    assert tracker.failed(unavailable) is Health.DEGRADED
    assert tracker.failed(unavailable) is Health.FAILING
    assert tracker.succeeded(troubled=False, backlog=True) is Health.RECOVERING
    assert tracker.succeeded(troubled=False, backlog=True) is Health.RECOVERING
    assert tracker.succeeded(troubled=False, backlog=False) is Health.HEALTHY
    assert tracker.succeeded(troubled=True, backlog=False) is Health.DEGRADED
    refused = ExportFailure("HTTP 401", "http_401", retryable=False)
    assert tracker.failed(refused) is Health.FAILING


def test_a_batch_refused_for_its_data_degrades_and_fails_when_every_one_is():
    """The next batch may be taken: one refused is degraded, FAILING_AFTER in a
    row failing, as for retryable failures; a refused sender fails at once."""
    tracker = HealthTracker()
    assert tracker.succeeded(troubled=False, backlog=False) is Health.HEALTHY
    bad_data = ExportFailure("HTTP 400", "http_400", retryable=False, batch_refused=True)
    assert tracker.failed(bad_data) is Health.DEGRADED
    assert tracker.succeeded(troubled=True, backlog=False) is Health.DEGRADED
    assert [tracker.failed(bad_data) for _ in range(3)] == [
        Health.DEGRADED, Health.DEGRADED, Health.FAILING]


def test_load_widens_step_by_step_and_narrows_back():
    governor = LoadGovernor(base=10.0, ceiling=40.0, share=0.5)
    assert governor.observe(6.0).after == 20.0          # 6 s of 10 s: over half
    assert governor.observe(11.0).after == 40.0
    assert governor.observe(30.0) is None                # at the ceiling
    for _ in range(CALM_EXPORTS - 1):
        assert governor.observe(1.0) is None
    assert governor.observe(1.0).after == 20.0
    assert governor.observe(0.1, sampler_share=0.9).after == 40.0   # the sampler overran


def test_load_is_judged_per_interval_when_a_backlog_is_sent():
    """Sending 60 queued intervals in 3 s at a 1 s interval is catching up, not
    load (50 ms each); one interval that takes 0.6 s is."""
    governor = LoadGovernor(base=1.0, ceiling=8.0, share=0.5)
    assert governor.observe(3.0, intervals=60) is None and governor.interval == 1.0
    change = governor.observe(0.6)
    assert change is not None and (change.before, change.after) == (1.0, 2.0)
    assert change.why == "an export took 0.60s of a 1s interval"
    change = governor.observe(24.0, intervals=20)
    assert change is not None and change.after == 4.0
    assert change.why == "sending 20 intervals took 1.20s each, of a 2s interval"


def export_metrics(*stats: ExporterStats) -> dict[str, tuple[Point, ...]]:
    telemetry = ExportTelemetry(started_ns=5)
    for one in stats:
        telemetry.add(one)
    return {data.info.name: data.points for data in telemetry.metrics(now_ns=10)}


def by(points: tuple[Point, ...], attribute: str) -> dict:
    """Each point's value by its value of `attribute`."""
    return {dict(p.attributes)[attribute]: p.value for p in points}


def test_export_metrics_say_what_each_exporter_did():
    stats = ExporterStats("central", "otlp-grpc")
    stats.attempt("success", "", 0.02)
    stats.attempt("failure", "unavailable", 0.5)
    stats.attempt("failure", "unavailable", 0.7)
    stats.attempt("failure", "timeout", 1.0)
    stats.dropped("queue_full", 12)
    stats.points_exported = 300
    stats.health = "failing"
    metrics = export_metrics(stats)
    assert by(metrics["ig_metrics.export.attempts"], "outcome") == {"success": 1, "failure": 3}
    assert by(metrics["ig_metrics.export.failures"], "error.type") == {
        "unavailable": 2, "timeout": 1}
    durations = by(metrics["ig_metrics.export.duration"], "outcome")
    assert durations["failure"].count == 3 and durations["failure"].sum == 2.2
    assert [p.value for p in metrics["ig_metrics.export.points"]] == [300]
    assert by(metrics["ig_metrics.export.points.dropped"], "reason") == {
        "overflow": 0, "queue_full": 12, "expired": 0, "rejected": 0}
    assert by(metrics["ig_metrics.exporter.health"], "ig_metrics.exporter.health") == {
        "starting": 0, "healthy": 0, "degraded": 0, "failing": 1, "recovering": 0,
        "stopped": 0}
    assert all(dict(p.attributes)["otel.component.name"] == "central"
               for points in metrics.values() for p in points)


def test_every_counter_of_a_new_exporter_is_there_at_zero():
    """Before anything happened: each outcome, each drop reason, both duration
    histograms at 0 (a series born holding its count adds nothing to
    increase()); error types, unknown beforehand, have no series yet."""
    metrics = export_metrics(ExporterStats("central", "otlp-grpc"))
    assert by(metrics["ig_metrics.export.attempts"], "outcome") == {"success": 0, "failure": 0}
    assert {outcome: histogram.count for outcome, histogram
            in by(metrics["ig_metrics.export.duration"], "outcome").items()} \
        == {"success": 0, "failure": 0}
    assert by(metrics["ig_metrics.export.points.dropped"], "reason") == {
        "overflow": 0, "queue_full": 0, "expired": 0, "rejected": 0}
    assert [p.value for p in metrics["ig_metrics.export.points"]] == [0]
    assert metrics["ig_metrics.export.failures"] == ()
    assert by(metrics["ig_metrics.exporter.health"], "ig_metrics.exporter.health")[
        "starting"] == 1


def test_the_health_gauge_has_a_series_for_every_state():
    assert set(HEALTH_STATES) == {health.value for health in Health}
