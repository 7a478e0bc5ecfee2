"""ExporterWorker with real receivers: its own schedule whatever the others do,
a bounded stop with a hung collector, health changes logged once each."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from ig_metrics.exporters.base import Exporter, ExportResult, Health
from ig_metrics.exporters.console import ConsoleSettings
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.exporters.delivery.worker import ExporterWorker, HealthChange
from ig_metrics.exporters.registry import create_exporter
from ig_metrics.model.snapshot import Snapshot
from tests.receivers import (
    HANG,
    OK,
    UNAVAILABLE,
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    clear_otel_environment,
    console_config,
    expected_values,
    flatten,
    otlp_config,
    tcp_like_snapshot,
)

MARGIN = 3.0      # seconds of slack on every bounded-time assertion (noisy machines)
FAST_RETRY = RetrySettings(initial=0.05, max=0.2)


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


class Latest:
    """Stands in for the sampler: holds the newest snapshot, made on demand."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.snapshot = snapshot

    def __call__(self) -> Snapshot | None:
        return self.snapshot

    def advance(self) -> Snapshot:
        seq = self.snapshot.seq + 1 if self.snapshot else 1
        self.snapshot = tcp_like_snapshot(seq=seq, sent=1000 * seq)
        return self.snapshot


def grpc_worker(receiver: OtlpGrpcReceiver, latest: Latest, *, interval: float,
                timeout: float = 1.0, name: str = "central",
                retry: RetrySettings = FAST_RETRY, **options) -> ExporterWorker:
    exporter = create_exporter(otlp_config(name, "otlp-grpc", receiver.endpoint,
                                           insecure=True, timeout=timeout, retry=retry))
    exporter.start()
    worker = ExporterWorker(exporter, interval, latest, **options)
    worker.start()
    return worker


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_first_export_as_soon_as_a_first_snapshot_exists():
    latest = Latest()
    with OtlpGrpcReceiver() as receiver:
        worker = grpc_worker(receiver, latest, interval=3600.0)
        try:
            time.sleep(0.3)
            assert receiver.received == [] and worker.status().health is Health.STARTING
            snapshot = latest.advance()
            wait_until(lambda: receiver.received, MARGIN)
            assert flatten(receiver.received) == expected_values(snapshot)
            assert worker.status().health is Health.HEALTHY
        finally:
            worker.stop(None, 2.0)


def test_each_snapshot_is_delivered_once():
    latest = Latest(tcp_like_snapshot(seq=1))
    with OtlpGrpcReceiver() as receiver:
        worker = grpc_worker(receiver, latest, interval=0.05)
        try:
            receiver.wait_for(1)
            time.sleep(0.5)                          # ten intervals, one snapshot
            assert len(receiver.received) == 1
            latest.advance()
            receiver.wait_for(2)
            time.sleep(0.3)
            assert len(receiver.received) == 2
            assert worker.status().exports_ok == 2
        finally:
            worker.stop(None, 2.0)


def test_a_hung_collector_delays_no_other_exporter():
    latest = Latest(tcp_like_snapshot(seq=1))
    stop_sampling = threading.Event()

    def sampler() -> None:
        while not stop_sampling.wait(0.05):
            latest.advance()

    with OtlpGrpcReceiver(behaviour=HANG) as hung, OtlpGrpcReceiver() as healthy:
        stuck = grpc_worker(hung, latest, interval=0.1, timeout=30.0, name="stuck")
        steady = grpc_worker(healthy, latest, interval=0.1, name="steady")
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            # While `stuck` waits on its first export (30 s timeout), `steady`
            # keeps exporting new snapshots at its own interval.
            healthy.wait_for(5, timeout=5 + MARGIN)
            assert stuck.status().exports_ok == stuck.status().exports_failed == 0
            assert stuck.status().exporting_for > 0
        finally:
            stop_sampling.set()
            thread.join()
            # stop() does not wait out the 30 s export: it abandons it.
            assert stuck.stop(None, 1.0) is False
            assert steady.stop(None, 1.0) is True


@pytest.mark.parametrize("receiver_class", [OtlpGrpcReceiver, OtlpHttpReceiver])
def test_stop_returns_within_its_timeout_with_a_hung_collector(receiver_class):
    latest = Latest(tcp_like_snapshot(seq=1))
    with receiver_class(behaviour=HANG) as receiver:
        kind = "otlp-grpc" if receiver_class is OtlpGrpcReceiver else "otlp-http"
        endpoint = receiver.endpoint if kind == "otlp-grpc" else receiver.url()
        exporter = create_exporter(otlp_config("hung", kind, endpoint, insecure=True,
                                               timeout=30.0))
        exporter.start()
        worker = ExporterWorker(exporter, 0.1, latest)
        worker.start()
        wait_until(lambda: worker.status().exporting_for > 0.2, MARGIN)
        # The 30 s export is abandoned, not waited for (it would end the thread).
        assert worker.stop(tcp_like_snapshot(seq=2), 2.0) is False
        assert worker.status().health is Health.STOPPED


def test_final_snapshot_is_delivered_on_stop():
    latest = Latest(tcp_like_snapshot(seq=1))
    with OtlpGrpcReceiver() as receiver:
        worker = grpc_worker(receiver, latest, interval=3600.0)
        receiver.wait_for(1)
        final = tcp_like_snapshot(seq=2, sent=987_654)
        worker.stop(final, 5.0)
        assert len(receiver.received) == 2
        assert flatten(receiver.received[1:]) == expected_values(final)
        assert worker.status().health is Health.STOPPED


def test_health_changes_are_logged_once_each(caplog):
    caplog.set_level(logging.INFO, logger="ig_metrics.exporters")
    latest = Latest(tcp_like_snapshot(seq=1))
    stop_sampling = threading.Event()

    def sampler() -> None:
        while not stop_sampling.wait(0.05):
            latest.advance()

    changes: list[HealthChange] = []
    with OtlpGrpcReceiver(behaviour=UNAVAILABLE) as receiver:
        worker = grpc_worker(receiver, latest, interval=0.05, timeout=0.5,
                             on_health=changes.append)
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            wait_until(lambda: worker.status().exports_failed >= 3, 10 + MARGIN)
            failing = worker.status()
            assert failing.health is Health.FAILING
            assert failing.consecutive_failures >= 3 and failing.last_success_ns == 0
            assert "UNAVAILABLE" in failing.last_error
            receiver.behaviour = OK
            wait_until(lambda: worker.status().exports_ok >= 3, 10 + MARGIN)
            healthy = worker.status()
            assert healthy.health is Health.HEALTHY and healthy.consecutive_failures == 0
            assert healthy.last_success_ns > 0 and healthy.last_duration > 0
        finally:
            stop_sampling.set()
            thread.join()
            worker.stop(None, 2.0)
    messages = [record.getMessage() for record in caplog.records
                if record.name == "ig_metrics.exporters"]
    # starting -> degraded -> failing -> recovering -> healthy, each change once,
    # and one log line for each.
    assert [(change.before, change.after) for change in changes] == [
        (Health.STARTING, Health.DEGRADED), (Health.DEGRADED, Health.FAILING),
        (Health.FAILING, Health.RECOVERING), (Health.RECOVERING, Health.HEALTHY)], changes
    health_lines = [m for m in messages
                    if m.startswith("exporter central") and ": interval " not in m]
    assert len(health_lines) == len(changes), messages
    assert "UNAVAILABLE" in messages[0] and "UNAVAILABLE" in messages[1]
    assert "3 failed attempts in a row" in messages[1]
    # The SDK's own per-attempt lines went into the status, not the log.
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]


class BrokenExporter(Exporter):
    """Stands in for an exporter with a bug: every export raises."""

    settings_type = ConsoleSettings

    def deliver(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        raise RuntimeError("bug in the exporter")


def test_an_exporter_that_raises_counts_as_failing_and_keeps_its_worker():
    latest = Latest(tcp_like_snapshot(seq=1))
    worker = ExporterWorker(BrokenExporter(console_config("broken")), 0.05, latest,
                            retry=FAST_RETRY)
    worker.start()
    try:
        wait_until(lambda: worker.status().exports_failed >= 1)
        assert worker.status().health is Health.DEGRADED
        latest.advance()
        wait_until(lambda: worker.status().exports_failed >= 3)
        status = worker.status()
        assert status.health is Health.FAILING
        assert status.last_error == "RuntimeError: bug in the exporter"
    finally:
        worker.stop(None, 1.0)


class StuckExporter(Exporter):
    """Stands in for an exporter that ignores its timeout (blocked output)."""

    settings_type = ConsoleSettings

    def __init__(self, config) -> None:
        super().__init__(config)
        self.release = threading.Event()

    @property
    def export_timeout(self) -> float:
        return 0.1

    def deliver(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        self.release.wait(30)
        return ExportResult.SUCCESS


def test_an_export_overrunning_its_timeout_shows_as_failing():
    exporter = StuckExporter(console_config("stuck"))
    worker = ExporterWorker(exporter, 0.05, Latest(tcp_like_snapshot(seq=1)))
    worker.start()
    try:
        wait_until(lambda: worker.status().health is Health.FAILING, 5 + MARGIN)
        assert worker.status().last_error.startswith("export still running after")
        exporter.release.set()
        # Delivered at last; the export took far more than half of the 50 ms
        # interval, so the load governor widened it: degraded, not failing.
        wait_until(lambda: worker.status().exports_ok == 1)
        assert worker.status().health is Health.DEGRADED
        assert worker.status().interval == 0.1
    finally:
        exporter.release.set()
        worker.stop(None, 1.0)


def test_a_pull_exporter_serves_every_new_snapshot_whatever_its_interval():
    """A scrape must see the newest reading: the worker hands a Prometheus
    exporter each new snapshot at once, even with an hourly interval."""
    from tests.receivers import prometheus_config, scrape

    latest = Latest()
    latest.advance()
    exporter = create_exporter(prometheus_config("pulled"))
    exporter.start()
    worker = ExporterWorker(exporter, 3600.0, latest)
    worker.start()
    try:
        url = f"http://127.0.0.1:{exporter.bound_port}/metrics"
        wait_until(lambda: 'tcp_sent_bytes_total{' in scrape(url)[0])
        latest.advance()          # seq 2: sent 2000 for the first series
        wait_until(lambda: "2000.0" in scrape(url)[0] or " 2000\n" in scrape(url)[0])
    finally:
        worker.stop(None, 5)
