"""Metrics about the export itself: what each exporter attempted, delivered and
dropped, how long it took, its queue and interval. Workers and exporters write
an ExporterStats each; ExportTelemetry renders them into every snapshot."""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter

from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
)

# Export durations in seconds: from a loopback round trip to a timed-out attempt.
DURATION_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0)
NAME, TYPE = "otel.component.name", "otel.component.type"

ATTEMPTS = MetricInfo(
    "ig_metrics.export.attempts", COUNTER, "{attempt}",
    "Export attempts of each exporter, by outcome (success, failure); "
    "ig_metrics.export.failures says why the failed ones failed.")
FAILURES = MetricInfo(
    "ig_metrics.export.failures", COUNTER, "{attempt}",
    "Failed export attempts of each exporter, by error.type (unavailable, http_503, "
    "timeout, ...); a type's series starts at its first failure.")
DURATION = MetricInfo(
    "ig_metrics.export.duration", HISTOGRAM, "s",
    "How long export attempts took, by exporter and outcome.", DURATION_BOUNDS)
POINTS = MetricInfo(
    "ig_metrics.export.points", COUNTER, "{point}",
    "Data points each exporter delivered (a pull exporter: handed to its endpoint).")
DROPPED = MetricInfo(
    "ig_metrics.export.points.dropped", COUNTER, "{point}",
    "Data points not delivered as their own series, by reason: overflow (folded into "
    "the otel.metric.overflow series), queue_full, expired, rejected (refused by "
    "the collector).")
QUEUE_DEPTH = MetricInfo(
    "ig_metrics.export.queue.depth", GAUGE, "{batch}",
    "Delta intervals waiting to be sent.")
QUEUE_SIZE = MetricInfo(
    "ig_metrics.export.queue.size", GAUGE, "By",
    "Bytes of the delta intervals waiting to be sent.")
INTERVAL = MetricInfo(
    "ig_metrics.export.interval", GAUGE, "s",
    "Each exporter's interval now, widened by load or not.")
HEALTH = MetricInfo(
    "ig_metrics.exporter.health", GAUGE, "{exporter}",
    "Each exporter's health, one series per state (attribute ig_metrics.exporter.health: "
    "starting, healthy, degraded, failing, recovering, stopped): 1 for the state it is "
    "in, 0 for the others.")

OUTCOMES = ("success", "failure")
DROP_REASONS = ("overflow", "queue_full", "expired", "rejected")
# The values of exporters.base.Health (which imports this module).
HEALTH_STATES = ("starting", "healthy", "degraded", "failing", "recovering", "stopped")

EXPORT_METRICS = (
    (ATTEMPTS, (NAME, TYPE, "outcome")), (FAILURES, (NAME, TYPE, "error.type")),
    (DURATION, (NAME, TYPE, "outcome")), (POINTS, (NAME, TYPE)),
    (DROPPED, (NAME, TYPE, "reason")), (QUEUE_DEPTH, (NAME, TYPE)),
    (QUEUE_SIZE, (NAME, TYPE)), (INTERVAL, (NAME, TYPE)),
    (HEALTH, (NAME, TYPE, "ig_metrics.exporter.health")),
)


class ExporterStats:
    """What one exporter did; written by its worker thread, read by the sampler's.

    Every counter series whose attributes are known at start (each outcome, each
    drop reason) is there from the first snapshot on, at 0, as Prometheus'
    instrumentation guidance asks: a series first seen holding its whole count
    adds nothing to increase() or rate(), so a first drop or failure would go
    unseen. Only error types, which cannot be known beforehand, start with
    their first failure (their total is the failure outcome's)."""

    def __init__(self, name: str, type_: str) -> None:
        self.attributes = ((NAME, name), (TYPE, type_))
        self._lock = threading.Lock()
        self._outcomes: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        self._failures: Counter[str] = Counter()                 # by error.type
        self._durations = {outcome: [0.0] * (len(DURATION_BOUNDS) + 2)   # [counts..., sum]
                           for outcome in OUTCOMES}
        self._dropped: Counter[str] = Counter(dict.fromkeys(DROP_REASONS, 0))
        self.points_exported = 0
        self.queue_batches = 0
        self.queue_bytes = 0
        self.interval = 0.0
        self.health = "starting"
        self.last_pull_ns = 0            # a pull exporter: when it was last scraped (wall clock)
        self.last_puller = ""            # and by which address

    def pulled(self, address: str) -> None:
        """A reader (a scraper) took the latest snapshot."""
        self.last_pull_ns, self.last_puller = time.time_ns(), address

    def attempt(self, outcome: str, reason: str, seconds: float, points: int = 0) -> None:
        with self._lock:
            self._outcomes[outcome] += 1
            if outcome == "failure":
                self._failures[reason] += 1
            buckets = self._durations[outcome]
            buckets[bisect.bisect_left(DURATION_BOUNDS, seconds)] += 1
            buckets[-1] += seconds
            self.points_exported += points

    def dropped(self, reason: str, points: int) -> None:
        if points:
            with self._lock:
                self._dropped[reason] += points

    @property
    def points_dropped(self) -> int:
        with self._lock:
            return sum(self._dropped.values())

    def dropped_by_reason(self) -> dict[str, int]:
        """Points dropped, by the reasons that dropped any."""
        with self._lock:
            return {reason: count for reason, count in self._dropped.items() if count}

    def metrics(self, now_ns: int, start_ns: int) -> list[tuple[MetricInfo, list[Point]]]:
        own = self.attributes
        with self._lock:
            attempts = [Point(own + (("outcome", outcome),), count, start_ns)
                        for outcome, count in sorted(self._outcomes.items())]
            failures = [Point(own + (("error.type", reason),), count, start_ns)
                        for reason, count in sorted(self._failures.items())]
            durations = [Point(own + (("outcome", outcome),), HistogramValue(
                tuple(int(count) for count in buckets[:-1]), buckets[-1],
                int(sum(buckets[:-1]))), start_ns)
                for outcome, buckets in sorted(self._durations.items())]
            dropped = [Point(own + (("reason", reason),), count, start_ns)
                       for reason, count in sorted(self._dropped.items())]
            exported = self.points_exported
        return [
            (ATTEMPTS, attempts), (FAILURES, failures), (DURATION, durations),
            (POINTS, [Point(own, exported, start_ns)]), (DROPPED, dropped),
            (QUEUE_DEPTH, [Point(own, self.queue_batches, now_ns)]),
            (QUEUE_SIZE, [Point(own, self.queue_bytes, now_ns)]),
            (INTERVAL, [Point(own, self.interval, now_ns)]),
            (HEALTH, [Point(own + (("ig_metrics.exporter.health", state),),
                            int(state == self.health), now_ns)
                      for state in HEALTH_STATES]),
        ]


class ExportTelemetry:
    """Every exporter's stats of one run, as metrics for each snapshot."""

    def __init__(self, started_ns: int | None = None) -> None:
        self.started_ns = started_ns or time.time_ns()
        self.exporters: list[ExporterStats] = []

    def add(self, stats: ExporterStats) -> None:
        self.exporters.append(stats)

    def metrics(self, now_ns: int) -> list[MetricData]:
        points: dict[MetricInfo, list[Point]] = {info: [] for info, _ in EXPORT_METRICS}
        for stats in self.exporters:
            for info, own in stats.metrics(now_ns, self.started_ns):
                points[info].extend(own)
        return [MetricData(info, tuple(found)) for info, found in points.items()]
