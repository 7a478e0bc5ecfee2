"""Quotas and schedules on their own: overflow folding that never goes
backwards, the backoff's waits, the health state machine, the load governor and
the export-quality metrics."""

from __future__ import annotations

import random

from ig_metrics.config.model import LimitSettings
from ig_metrics.exporters.backoff import RetrySettings
from ig_metrics.exporters.backoff import RETRY_AFTER_CAP, Backoff
from ig_metrics.exporters.base import ExportFailure, Health
from ig_metrics.exporters.health import HealthTracker
from ig_metrics.exporters.limits import OVERFLOW_ATTRIBUTES, SeriesLimiter
from ig_metrics.exporters.load import CALM_EXPORTS, LoadGovernor
from ig_metrics.exporters.telemetry import ExporterStats, ExportTelemetry
from ig_metrics.model.snapshot import (
    COUNTER, HISTOGRAM, HistogramValue, MetricData, MetricInfo, Point, Snapshot
)

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
    backoff = Backoff.of(RetrySettings(initial=1.0, max=8.0), random.Random(1))
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


def test_load_widens_step_by_step_and_narrows_back():
    governor = LoadGovernor(base=10.0, ceiling=40.0, share=0.5)
    assert governor.observe(6.0).after == 20.0          # 6 s of 10 s: over half
    assert governor.observe(11.0).after == 40.0
    assert governor.observe(30.0) is None                # at the ceiling
    for _ in range(CALM_EXPORTS - 1):
        assert governor.observe(1.0) is None
    assert governor.observe(1.0).after == 20.0
    assert governor.observe(0.1, sampler_share=0.9).after == 40.0   # the sampler overran


def test_export_metrics_say_what_each_exporter_did():
    stats = ExporterStats("central", "otlp-grpc")
    stats.attempt("success", "", 0.02)
    stats.attempt("failure", "unavailable", 0.5)
    stats.attempt("failure", "unavailable", 0.7)
    stats.dropped("queue_full", 12)
    stats.points_exported = 300
    telemetry = ExportTelemetry(started_ns=5)
    telemetry.add(stats)
    metrics = {data.info.name: data.points for data in telemetry.metrics(now_ns=10)}
    attempts = {dict(p.attributes).get("error.type", "-"): p.value
                for p in metrics["ig_metrics.export.attempts"]}
    assert attempts == {"-": 1, "unavailable": 2}
    durations = {dict(p.attributes)["outcome"]: p.value
                 for p in metrics["ig_metrics.export.duration"]}
    assert durations["failure"].count == 2 and durations["failure"].sum == 1.2
    assert [p.value for p in metrics["ig_metrics.export.points"]] == [300]
    assert [(dict(p.attributes)["reason"], p.value)
            for p in metrics["ig_metrics.export.points.dropped"]] == [("queue_full", 12)]
    assert all(dict(p.attributes)["otel.component.name"] == "central"
               for points in metrics.values() for p in points)
