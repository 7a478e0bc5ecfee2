"""Exporters against real receivers that fail the way collectors do: killed and
restarted, refusing (UNAVAILABLE / 503), throttling (RetryInfo / Retry-After),
refusing for good (UNAUTHENTICATED / 401), slow. Each test names a guarantee of
docs/reliability.md and fails if it breaks."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from ig_metrics.config.model import LimitSettings
from ig_metrics.exporters.base import ExportResult, Health
from ig_metrics.exporters.delivery.queue import QueueSettings
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.exporters.delivery.worker import ExporterWorker, HealthChange
from ig_metrics.exporters.registry import create_exporter
from tests.receivers import (
    OK,
    SLOW,
    THROTTLE,
    UNAUTHENTICATED,
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    clear_otel_environment,
    expected_values,
    flatten,
    free_port,
    iter_points,
    otlp_config,
    tcp_like_snapshot,
)

MARGIN = 3.0
FAST_RETRY = RetrySettings(initial=0.05, max=0.3)
TRANSPORTS = ["otlp-grpc", "otlp-http"]


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


def receiver_for(type_: str, **options):
    return (OtlpGrpcReceiver if type_ == "otlp-grpc" else OtlpHttpReceiver)(**options)


def endpoint_of(type_: str, receiver) -> str:
    return receiver.endpoint if type_ == "otlp-grpc" else receiver.url()


class Sampler:
    """Stands in for the sampler: a new snapshot every `period`, counters growing."""

    def __init__(self, period: float = 0.05) -> None:
        self.snapshot = tcp_like_snapshot(seq=1, sent=1000)
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __call__(self):
        return self.snapshot

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            seq = self.snapshot.seq + 1
            self.snapshot = tcp_like_snapshot(seq=seq, sent=1000 * seq, scale=seq,
                                              time_ns=self.snapshot.time_ns + 10_000_000)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def worker_for(config, sampler, interval: float = 0.1, **options) -> ExporterWorker:
    exporter = create_exporter(config)
    exporter.start()
    worker = ExporterWorker(exporter, interval, sampler, **options)
    worker.start()
    return worker


def wait_until(condition, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
    return time.monotonic() - started


def wait_for_intervals(count: int, interval: float) -> float:
    """Let `count` intervals of a worker pass (seconds waited): for a test that
    watches for something that must NOT happen, which no polling can show."""
    time.sleep(count * interval)
    return count * interval


def series_values(received) -> dict[tuple, list[float]]:
    """Every value each counter series had, in the order the receiver got them."""
    values: dict[tuple, list[float]] = {}
    for _, metric, point in iter_points(received):
        if metric.WhichOneof("data") == "sum":
            key = (metric.name, tuple(sorted((kv.key, str(kv.value)) for kv in point.attributes)))
            values.setdefault(key, []).append(point.as_int or point.as_double)
    return values


# --- cumulative: nothing lost, nothing goes backwards -----------------------------
@pytest.mark.parametrize("type_", TRANSPORTS)
def test_cumulative_survives_a_receiver_killed_and_restarted(type_):
    changes: list[HealthChange] = []
    receiver = receiver_for(type_)
    port = receiver.port
    config = otlp_config("central", type_, endpoint_of(type_, receiver), insecure=True,
                         timeout=0.5, retry=FAST_RETRY)
    with Sampler() as sampler:
        worker = worker_for(config, sampler, on_health=changes.append)
        try:
            receiver.wait_for(3)
            before = list(receiver.received)
            # Before this, an export slower than its share of the 0.1 s interval
            # (a busy machine) may have had the load governor widen it and
            # degrade it: the governor's business (test_exporter_worker.py), not
            # this test's, which follows the states from the outage on.
            since_outage = len(changes)
            receiver.close()                                   # the collector dies
            wait_until(lambda: worker.status().health is Health.FAILING, 5 + MARGIN)
            time.sleep(0.5)
            restarted = receiver_for(type_, port=port)         # and comes back
            # Back within one interval plus the longest backoff (with a margin).
            restarted.wait_for(1, timeout=0.1 + FAST_RETRY.max + MARGIN)
            wait_until(lambda: worker.status().health is Health.HEALTHY, 2 + MARGIN)
        finally:
            final = sampler()
            worker.stop(final, 2.0)
    restarted.close()
    history = series_values(before + restarted.received)
    assert history, "nothing received"
    for key, values in history.items():
        assert values == sorted(values), f"{key} went backwards: {values}"
    states = [change.after for change in changes[since_outage:]]
    # The outage makes it fail, then recover, then be healthy again. Around
    # that, a busy machine may have the load governor widen the interval and
    # degrade it (and heal it) without any failure: seen, but not the outage's.
    assert Health.FAILING in states, states
    failed = states.index(Health.FAILING)
    assert Health.RECOVERING in states[failed:], states
    recovered = states.index(Health.RECOVERING, failed)
    assert Health.HEALTHY not in states[failed:recovered], states
    assert states[-1] is Health.HEALTHY, states
    assert all(change.failure is None for change in changes[since_outage:]
               if change.after is Health.DEGRADED and change.before is Health.RECOVERING), changes
    assert final.seq > 3
    # Nothing lost: the last export carries the totals of the last reading.
    assert flatten(restarted.received) == expected_values(final)


@pytest.mark.parametrize("type_", TRANSPORTS)
def test_one_long_lived_connection_carries_every_export(type_):
    with receiver_for(type_) as receiver:
        config = otlp_config("central", type_, endpoint_of(type_, receiver), insecure=True)
        exporter = create_exporter(config)
        exporter.start()
        for seq in range(1, 6):
            assert exporter.export(tcp_like_snapshot(seq=seq), 2.0) is ExportResult.SUCCESS
        exporter.shutdown(1.0)
        peers = {item.peer for item in receiver.wait_for(5)}
    assert len(peers) == 1, peers


# --- delta: a bounded queue, delivered after the outage ---------------------------
def grown(seq: int, sent: int):
    """The reading of interval `seq`: pid 4242 has sent `sent` bytes in all."""
    return tcp_like_snapshot(seq=seq, sent=sent)


def delta_sum(received, pid: int = 4242) -> tuple[int, list[tuple[int, int]]]:
    """Sum of tcp.sent deltas for `pid`, and the (start, end) of each point."""
    total, spans = 0, []
    for _, metric, point in iter_points(received):
        attributes = {kv.key: kv.value.int_value for kv in point.attributes}
        if metric.name == "tcp.sent" and attributes.get("process.pid") == pid:
            total += point.as_int
            spans.append((point.start_time_unix_nano, point.time_unix_nano))
    return total, spans


@pytest.mark.parametrize("type_", TRANSPORTS)
def test_delta_intervals_are_delivered_after_an_outage(type_):
    receiver = receiver_for(type_)
    port = receiver.port
    exporter = create_exporter(otlp_config("d", type_, endpoint_of(type_, receiver),
                                           insecure=True, temporality="delta", timeout=0.5))
    exporter.start()
    assert exporter.export(grown(1, 1000), 1.0) is ExportResult.SUCCESS
    receiver.close()
    for seq in range(2, 7):                       # five intervals read while it is down
        assert exporter.export(grown(seq, 1000 * seq), 0.5) is ExportResult.FAILURE
    assert exporter.stats.queue_batches == 5
    with receiver_for(type_, port=port) as back:
        assert exporter.export(grown(7, 7000), 2.0) is ExportResult.SUCCESS
        exporter.shutdown(1.0)
        delivered = back.wait_for(6)
    total, spans = delta_sum(receiver.received + delivered)
    assert total == 7000                           # every byte, exactly once
    assert len(spans) == 7                         # one point per interval
    assert all(spans[i][1] == spans[i + 1][0] for i in range(1, 6))   # contiguous


def test_delta_queue_in_a_directory_survives_a_restart(tmp_path):
    port = free_port()
    queue = QueueSettings(dir=tmp_path / "queue")
    config = otlp_config("edge", "otlp-grpc", f"127.0.0.1:{port}", insecure=True,
                         temporality="delta", timeout=0.3, queue=queue)
    first_run = create_exporter(config)
    first_run.start()
    for seq in range(1, 4):                        # the collector is down all along
        assert first_run.export(grown(seq, 1000 * seq), 0.3) is ExportResult.FAILURE
    first_run.shutdown(1.0)                        # ig-metrics stops (or the node reboots)
    assert len(list((tmp_path / "queue" / "edge").glob("*.batch"))) == 3
    with OtlpGrpcReceiver(port=port) as receiver:
        second_run = create_exporter(config)
        second_run.start()
        assert second_run.stats.queue_batches == 3
        assert second_run.send(2.0) is ExportResult.SUCCESS
        second_run.shutdown(1.0)
        delivered = receiver.wait_for(3)
    total, spans = delta_sum(delivered)
    assert total == 3000 and len(spans) == 3
    assert list((tmp_path / "queue" / "edge").glob("*.batch")) == []


def test_a_queue_directory_is_used_by_one_ig_metrics_at_a_time(tmp_path):
    from ig_metrics.exporters.base import ExporterStartError
    config = otlp_config("edge", "otlp-grpc", "127.0.0.1:4317", insecure=True,
                         temporality="delta", queue=QueueSettings(dir=tmp_path))
    first = create_exporter(config)
    first.start()
    try:
        with pytest.raises(ExporterStartError, match="in use by another running ig-metrics"):
            create_exporter(config).start()
    finally:
        first.shutdown(1.0)


def test_a_full_queue_drops_the_oldest_and_counts_them():
    port = free_port()
    config = otlp_config("d", "otlp-grpc", f"127.0.0.1:{port}", insecure=True,
                         temporality="delta", timeout=0.3, queue=QueueSettings(max_batches=3))
    exporter = create_exporter(config)
    exporter.start()
    for seq in range(1, 6):
        exporter.export(grown(seq, 1000 * seq), 0.3)
    assert exporter.stats.queue_batches == 3
    # Intervals 1 and 2 dropped: the 7 points of the first (all new) and the 2 of
    # the second (pid 4242's growth, and the gauge).
    assert exporter.stats.dropped_by_reason()["queue_full"] == 7 + 2
    with OtlpGrpcReceiver(port=port) as receiver:
        assert exporter.send(2.0) is ExportResult.SUCCESS
        exporter.shutdown(1.0)
        total, spans = delta_sum(receiver.wait_for(3))
    assert total == 5000 - 2000 and len(spans) == 3     # intervals 3, 4, 5


# --- retry policy ------------------------------------------------------------------
@pytest.mark.parametrize("type_", TRANSPORTS)
@pytest.mark.parametrize("new_readings", [True, False], ids=["readings", "one-reading"])
def test_a_permanent_refusal_is_said_once_and_not_hammered(type_, new_readings, caplog):
    caplog.set_level(logging.INFO, logger="ig_metrics.exporters")
    with receiver_for(type_, behaviour=UNAUTHENTICATED) as receiver, Sampler() as sampler:
        config = otlp_config("locked", type_, endpoint_of(type_, receiver), insecure=True,
                             retry=FAST_RETRY)
        reading = sampler()
        worker = worker_for(config, sampler if new_readings else (lambda: reading),
                            interval=0.5)
        try:
            wait_until(lambda: worker.status().health is Health.FAILING)
            # A window of four intervals in which a retry loop would have made
            # dozens of attempts (its backoff starts at 50 ms): the absence of
            # attempts can only be watched for, not polled.
            first = receiver.attempts
            window = wait_for_intervals(4, 0.5)
            status = worker.status()
        finally:
            worker.stop(None, 1.0)
    # One attempt per interval at most.
    assert receiver.attempts - first <= window / 0.5 + 1, (receiver.attempts, window)
    assert status.health is Health.FAILING and "not retried" in status.last_error
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "credentials in headers" in errors[0] and "profiles/test.yaml:3" in errors[0]


@pytest.mark.parametrize("type_", TRANSPORTS)
def test_retry_after_from_the_collector_is_honoured(type_):
    with receiver_for(type_, behaviour=THROTTLE, retry_after=1.0) as receiver, \
            Sampler() as sampler:
        config = otlp_config("throttled", type_, endpoint_of(type_, receiver), insecure=True,
                             retry=RetrySettings(initial=0.01, max=0.02))
        worker = worker_for(config, sampler, interval=0.05)
        try:
            wait_until(lambda: receiver.attempts >= 1)
            first = time.monotonic()
            wait_until(lambda: receiver.attempts >= 2, 2 + MARGIN)
            gap = time.monotonic() - first
            status = worker.status()
        finally:
            worker.stop(None, 1.0)
    assert gap >= 0.9, gap        # not the 10-20 ms of retry: the collector's 1 s
    assert status.health in (Health.DEGRADED, Health.FAILING)
    assert "429" in status.last_error or "RESOURCE_EXHAUSTED" in status.last_error


def test_a_slow_collector_widens_the_interval_then_it_narrows_back(caplog):
    caplog.set_level(logging.INFO, logger="ig_metrics.exporters")
    with OtlpGrpcReceiver(behaviour=SLOW, delay=0.15) as receiver, Sampler() as sampler:
        config = otlp_config("busy", "otlp-grpc", receiver.endpoint, insecure=True, timeout=2.0)
        worker = worker_for(config, sampler, interval=0.1, max_interval=0.4)
        try:
            wait_until(lambda: worker.interval == 0.4, 5 + MARGIN)
            assert worker.status().health is Health.DEGRADED
            receiver.behaviour = OK
            wait_until(lambda: worker.interval == 0.1, 10 + MARGIN)
            wait_until(lambda: worker.status().health is Health.HEALTHY, 2 + MARGIN)
        finally:
            worker.stop(None, 1.0)
    changes = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("exporter busy: interval")]
    assert [m.split(": ")[1].split(" from")[0] for m in changes] == [
        "interval widened", "interval widened", "interval narrowed", "interval narrowed"]


def test_healthy_exporters_keep_their_schedule_while_another_hangs():
    from tests.receivers import HANG
    with OtlpHttpReceiver(behaviour=HANG) as hung, OtlpGrpcReceiver() as healthy, \
            Sampler() as sampler:
        stuck = worker_for(otlp_config("stuck", "otlp-http", hung.url(), timeout=30.0),
                           sampler, interval=0.1)
        steady = worker_for(otlp_config("steady", "otlp-grpc", healthy.endpoint,
                                        insecure=True), sampler, interval=0.2)
        try:
            healthy.wait_for(2)
            wait_until(lambda: stuck.status().exporting_for > 0)
            start = len(healthy.received)
            hung_since = stuck.status().exporting_for
            # Five more exports of the healthy one while the other's first hangs.
            wait_until(lambda: len(healthy.received) - start >= 5)
            assert stuck.status().exports_ok == 0
            assert stuck.status().exporting_for > hung_since     # the same export, still hung
        finally:
            assert stuck.stop(None, 1.0) is False       # its hung export abandoned
            steady.stop(None, 1.0)


# --- quotas --------------------------------------------------------------------------
def test_series_over_the_limit_are_folded_and_counted():
    with OtlpGrpcReceiver() as receiver:
        limits = LimitSettings(max_series=2)
        exporter = create_exporter(otlp_config("capped", "otlp-grpc", receiver.endpoint,
                                               insecure=True, limits=limits))
        exporter.start()
        first = tcp_like_snapshot(seq=1)
        assert exporter.export(first, 2.0) is ExportResult.SUCCESS
        exporter.shutdown(1.0)
        [request] = receiver.wait_for(1)
    sent = [(dict((kv.key, kv.value) for kv in point.attributes), point.as_int)
            for _, metric, point in iter_points([request]) if metric.name == "tcp.sent"]
    # tcp.sent has 3 series: the first is kept, the other two folded into one.
    assert len(sent) == 2
    overflow = [value for attributes, value in sent if "otel.metric.overflow" in attributes]
    assert overflow == [2048 + 7]
    # The limit counts the overflow series, as the OpenTelemetry SDK's does: 2
    # folded of tcp.sent, 1 of tcp.connections.opened (2 series, 1 kept).
    assert exporter.stats.dropped_by_reason() == {"overflow": 3}


def test_an_unreadable_queue_file_is_set_aside_and_the_rest_delivered(tmp_path, caplog):
    port = free_port()
    config = otlp_config("edge", "otlp-grpc", f"127.0.0.1:{port}", insecure=True,
                         temporality="delta", timeout=0.3, queue=QueueSettings(dir=tmp_path))
    first_run = create_exporter(config)
    first_run.start()
    for seq in (1, 2):
        first_run.export(grown(seq, 1000 * seq), 0.3)
    first_run.shutdown(1.0)
    damaged, intact = sorted((tmp_path / "edge").glob("*.batch"))
    damaged.write_bytes(damaged.read_bytes()[:-5])           # cut short, as by a crash
    with OtlpGrpcReceiver(port=port) as receiver:
        second_run = create_exporter(config)
        second_run.start()
        assert second_run.stats.queue_batches == 1
        assert second_run.send(2.0) is ExportResult.SUCCESS
        second_run.shutdown(1.0)
        total, _ = delta_sum(receiver.wait_for(1))
    assert total == 1000                       # interval 2 only: interval 1 was damaged
    assert [path.suffix for path in sorted((tmp_path / "edge").iterdir())
            if not path.name.startswith(".")] == [".corrupt"]
    assert "unreadable (truncated)" in caplog.text and str(tmp_path) not in caplog.text
