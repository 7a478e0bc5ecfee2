"""How exporter health and export quality read in the live table and in the
--no-tui summary line."""

from __future__ import annotations

from ig_metrics.exporters.base import ExporterStatus, Health
from ig_metrics.model.snapshot import COUNTER, GAUGE, MetricData, MetricInfo, Point, Snapshot
from ig_metrics.ui.status import exporter_line, sampler_line

NOW = 1_700_000_100_000_000_000


def status(health: Health, **fields) -> ExporterStatus:
    defaults = dict(name="central", type="otlp-grpc", target="collector:4317", health=health,
                    interval=10.0, configured_interval=10.0)
    return ExporterStatus(**{**defaults, **fields})


def test_a_recovering_exporter_shows_its_backlog_drops_and_error():
    line = exporter_line(status(Health.RECOVERING, last_success_ns=NOW - 2_000_000_000,
                                last_duration=0.012, points_exported=1234, queued_batches=3,
                                points_dropped=7, last_error="gRPC UNAVAILABLE: gone"),
                         NOW).plain
    assert line == ("◑ central (otlp-grpc collector:4317) recovering, every 10s, last export "
                    "2s ago in 12ms, 1,234 points since start, 3 queued, 7 dropped: "
                    "gRPC UNAVAILABLE: gone")


def test_a_pull_exporter_shows_its_last_scrape_and_who_made_it():
    scraped = status(Health.HEALTHY, pull=True, last_pull_ns=NOW - 3_000_000_000,
                     last_puller="10.0.0.7", last_success_ns=NOW)
    line = exporter_line(scraped, NOW).plain
    assert "last scrape 3s ago by 10.0.0.7" in line and "last export" not in line
    assert "not scraped yet" in exporter_line(status(Health.HEALTHY, pull=True), NOW).plain


def test_a_widened_interval_and_a_pending_retry_are_shown():
    line = exporter_line(status(Health.DEGRADED, interval=40.0, retry_in=4.2,
                                last_error="HTTP 503"), NOW).plain
    assert "degraded, every 40s (widened from 10s by load)" in line
    assert "retry in 4s: HTTP 503" in line


def test_a_healthy_exporter_shows_no_stale_error():
    line = exporter_line(status(Health.HEALTHY, last_error="old"), NOW).plain
    assert line.startswith("● central") and "old" not in line


def test_the_sampler_line_reads_the_self_metrics_of_the_snapshot():
    def metric(name, kind, *points):
        return MetricData(MetricInfo(name, kind, "", ""), points)
    snapshot = Snapshot(1, NOW, "tcp", (), (
        metric("ig_metrics.sampler.tick.duration", GAUGE, Point((), 0.0032, NOW)),
        metric("ig_metrics.kernel.dropped_events", COUNTER, Point((("bpf.map.name", "f"),), 5, 1)),
        metric("ig_metrics.bpf.runs", COUNTER, Point((("bpf.program.name", "p"),), 1000, 1)),
        metric("ig_metrics.bpf.run_time", COUNTER, Point((("bpf.program.name", "p"),), 5e-5, 1)),
    ))
    line = sampler_line(snapshot)
    assert line.plain == ("sampler: read in 3.2ms; kernel drops 5, missed 0; "
                          "BPF 1000 runs, 50ns/run")
    assert line.style == "red"          # drops are worth noticing
