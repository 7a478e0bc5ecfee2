"""A batch the receiver will never take: dropped and counted (rejected), never
holding up the data behind it, with the exporter's health saying why in one
line and what to do. Against the real Prometheus 2.42 taking remote write
without native histograms (it answers 500 "native histograms are disabled" to
a request holding one), a stand-in answering that with 500 or 422, stand-in
OTLP collectors refusing a batch for its data (HTTP 400, gRPC
INVALID_ARGUMENT), and the load governor while a backlog drains."""

from __future__ import annotations

import logging
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cramjam
import pytest

from ig_metrics.exporters.base import ExportResult, Health
from ig_metrics.exporters.delivery.queue import QueueSettings
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.exporters.delivery.worker import ExporterWorker, HealthChange
from ig_metrics.exporters.registry import create_exporter
from ig_metrics.exporters.remotewrite.exporter import NATIVE_FIX, RemoteWriteSettings
from ig_metrics.model.snapshot import Snapshot
from tests.proto_reference import WriteRequest
from tests.receivers import (
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    PrometheusServer,
    clear_otel_environment,
    exporter_config,
    free_port,
    iter_points,
    otlp_config,
    tcp_like_snapshot,
)

RECEIVER = "--web.enable-remote-write-receiver"
FAST_RETRY = RetrySettings(initial=0.05, max=0.3)
MARGIN = 3.0
# One histogram series in each tcp_like_snapshot: what a receiver without native
# histograms refuses of each.
HISTOGRAM_SERIES = 1
NATIVE_TROUBLE = f"1 data point refused: {NATIVE_FIX}"


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


@pytest.fixture(scope="module")
def classic_only(tmp_path_factory):
    """A Prometheus taking remote write, without native histograms."""
    with PrometheusServer([], tmp_path_factory.mktemp("classic-only"),
                          flags=(RECEIVER,)) as server:
        yield server


def remote_write(name: str, url: str, **settings):
    return exporter_config(name, "prometheus-remote-write",
                           RemoteWriteSettings(url=url, retry=FAST_RETRY, **settings))


def now_snapshot(seq: int, seconds_ago: float = 0.0) -> Snapshot:
    """tcp_like_snapshot at (about) now: the receiver's window takes it."""
    return tcp_like_snapshot(seq, sent=1_000 * seq,
                             time_ns=time.time_ns() - int(seconds_ago * 1e9))


class NowSampler:
    """Stands in for the sampler: a new snapshot at the current time every `period`."""

    def __init__(self, period: float = 0.05) -> None:
        self.snapshot = now_snapshot(1)
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __call__(self) -> Snapshot:
        return self.snapshot

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.snapshot = now_snapshot(self.snapshot.seq + 1)

    def __enter__(self) -> NowSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def wait_until(condition, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
    return time.monotonic() - started


# --- remote write, native histograms to a receiver without them -----------------------
def test_prometheus_without_native_histograms_still_gets_every_counter(classic_only):
    """Three queued snapshots, one send: each request is refused (500) for its
    native histogram, sent again without it and taken; the histograms are
    dropped and counted as rejected, the counters all arrive, nothing stays
    queued, and the exporter says why with the fix."""
    exporter = create_exporter(remote_write(
        "native-to-classic", f"http://127.0.0.1:{classic_only.port}/api/v1/write",
        histograms="native", external_labels=(("test", "every-counter"),)))
    exporter.start()
    try:
        for seq in (1, 2, 3):
            exporter.accept(now_snapshot(seq, seconds_ago=3 - seq))
        assert exporter.send(5.0) is ExportResult.SUCCESS, exporter.last_failure
        assert len(exporter.queue) == 0
        trouble = exporter.trouble
    finally:
        exporter.shutdown(1.0)
    assert trouble == NATIVE_TROUBLE
    assert exporter.stats.dropped_by_reason() == {"rejected": 3 * HISTOGRAM_SERIES}
    sent = 'tcp_sent_bytes_total{process_pid="4242",test="every-counter"}'
    assert float(classic_only.wait_for(sent)[0]["value"][1]) == 3_000
    samples = classic_only.query(f"count_over_time({sent}[5m])")
    assert float(samples[0]["value"][1]) == 3
    assert classic_only.query('{__name__=~"tcp_connect_duration_seconds.*"}') == []


def test_the_health_says_why_in_one_line_and_the_queue_does_not_grow(classic_only, caplog):
    caplog.set_level(logging.INFO, logger="ig_metrics.exporters")
    changes: list[HealthChange] = []
    exporter = create_exporter(remote_write(
        "native-worker", f"http://127.0.0.1:{classic_only.port}/api/v1/write",
        histograms="native", external_labels=(("test", "worker"),)))
    exporter.start()
    with NowSampler() as sampler:
        worker = ExporterWorker(exporter, 0.2, sampler, on_health=changes.append)
        worker.start()
        try:
            wait_until(lambda: worker.status().exports_ok >= 5, 5 + MARGIN)
            status = worker.status()
        finally:
            worker.stop(None, 1.0)
    assert status.health is Health.DEGRADED
    assert status.last_error == NATIVE_TROUBLE
    assert status.exports_failed == 0 and status.queued_batches == 0
    assert [change.after for change in changes] == [Health.DEGRADED]
    said = [record for record in caplog.records if NATIVE_FIX in record.getMessage()]
    # Once as the refusal, once as the change of health: not once per interval.
    assert len(said) == 2 and all(record.levelno == logging.WARNING for record in said)
    assert classic_only.wait_for('tcp_sent_bytes_total{process_pid="4242",test="worker"}')


class NoNativeHistograms(BaseHTTPRequestHandler):
    """Stands in for a remote write receiver without native histograms: a request
    holding one gets `status` and Prometheus' message; the others are taken.
    A subclass per test holds its own `status`, `refused` and `taken` lists."""

    status = 500
    refused: list[WriteRequest]
    taken: list[WriteRequest]

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))
        if any(series.histograms for series in request.timeseries):
            self.refused.append(request)
            self._answer(self.status, b"native histograms are disabled\n")
        else:
            self.taken.append(request)
            self._answer(204, b"")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        """Quiet."""


@pytest.mark.parametrize("status", [500, 422])
def test_a_request_refused_for_native_histograms_goes_again_without_them(status):
    """Prometheus answers 500 (a 4xx may come instead in future): either way the
    request is sent again with every series but the native histograms, as they
    were."""
    handler = type("Refusing", (NoNativeHistograms,),
                   {"status": status, "refused": [], "taken": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exporter = create_exporter(remote_write(
        "stand-in", f"http://127.0.0.1:{server.server_address[1]}/api/v1/write",
        histograms="native"))
    exporter.start()
    try:
        exporter.accept(tcp_like_snapshot(1))
        assert exporter.send(5.0) is ExportResult.SUCCESS, exporter.last_failure
    finally:
        exporter.shutdown(1.0)
        server.shutdown()
    (whole,) = handler.refused
    expected = WriteRequest()
    expected.timeseries.extend(series for series in whole.timeseries if not series.histograms)
    assert handler.taken == [expected]
    assert len(whole.timeseries) - len(expected.timeseries) == HISTOGRAM_SERIES
    assert exporter.stats.dropped_by_reason() == {"rejected": HISTOGRAM_SERIES}
    assert exporter.trouble == NATIVE_TROUBLE


# --- OTLP: a batch refused for its data -----------------------------------------------
def otlp_receiver(type_: str):
    return OtlpGrpcReceiver() if type_ == "otlp-grpc" else OtlpHttpReceiver()


def delta_exporter(type_: str, receiver):
    endpoint = receiver.endpoint if type_ == "otlp-grpc" else receiver.url()
    exporter = create_exporter(otlp_config("refused", type_, endpoint, insecure=True,
                                           temporality="delta", retry=FAST_RETRY,
                                           queue=QueueSettings(max_batches=10)))
    exporter.start()
    return exporter


def points_of(received) -> int:
    return sum(1 for _ in iter_points(received))


@pytest.mark.parametrize("type_", ["otlp-grpc", "otlp-http"])
def test_a_batch_refused_for_its_data_does_not_hold_up_the_next(type_):
    """Three queued intervals, the first refused for good (INVALID_ARGUMENT /
    HTTP 400): it is dropped and counted, and the two behind it go out in the
    same send, not an interval later."""
    with otlp_receiver(type_) as receiver:
        exporter = delta_exporter(type_, receiver)
        try:
            for seq in (1, 2, 3):
                exporter.accept(tcp_like_snapshot(seq, sent=1_000 * seq))
            receiver.refuse = 1
            assert exporter.send(5.0) is ExportResult.SUCCESS, exporter.last_failure
            trouble = exporter.trouble
        finally:
            exporter.shutdown(1.0)
        assert len(receiver.received) == 2 and len(receiver.refused) == 1
        assert exporter.stats.dropped_by_reason() == {"rejected": points_of(receiver.refused)}
        assert exporter.stats.points_exported == points_of(receiver.received)
    assert len(exporter.queue) == 0
    assert "refuses this data" in trouble and "not retried" in trouble


@pytest.mark.parametrize("type_", ["otlp-grpc", "otlp-http"])
def test_every_batch_refused_is_a_failure_and_nothing_stays_queued(type_):
    with otlp_receiver(type_) as receiver:
        exporter = delta_exporter(type_, receiver)
        try:
            for seq in (1, 2, 3):
                exporter.accept(tcp_like_snapshot(seq, sent=1_000 * seq))
            receiver.refuse = 3
            assert exporter.send(5.0) is ExportResult.FAILURE
        finally:
            exporter.shutdown(1.0)
        assert receiver.received == [] and len(receiver.refused) == 3
        assert exporter.stats.dropped_by_reason() == {"rejected": points_of(receiver.refused)}
    assert exporter.failure is not None and exporter.failure.batch_refused
    assert not exporter.failure.retryable and len(exporter.queue) == 0


# --- a backlog is not load -------------------------------------------------------------
def test_draining_a_backlog_after_a_restart_is_not_load(classic_only, tmp_path, caplog):
    """400 intervals left in queue.dir by a run that could not deliver them; the
    next run sends them all in one go, longer than half its 0.5 s interval, yet
    a few milliseconds per interval: the interval stays, the exporter is
    healthy, no widening is logged."""
    caplog.set_level(logging.INFO, logger="ig_metrics.exporters")
    queue = QueueSettings(dir=tmp_path / "queue", max_batches=1_000)
    backlog = 400
    down = create_exporter(remote_write(
        "backlog", f"http://127.0.0.1:{free_port()}/api/v1/write", queue=queue,
        external_labels=(("test", "backlog"),)))
    down.start()
    for seq in range(1, backlog + 1):
        down.accept(now_snapshot(seq, seconds_ago=(backlog - seq) * 0.01 + 1))
    down.shutdown(1.0)
    changes: list[HealthChange] = []
    back = create_exporter(remote_write(
        "backlog", f"http://127.0.0.1:{classic_only.port}/api/v1/write", queue=queue,
        external_labels=(("test", "backlog"),)))
    back.start()
    assert back.stats.queue_batches == backlog
    interval = 0.5
    with NowSampler() as sampler:
        worker = ExporterWorker(back, interval, sampler, on_health=changes.append)
        started = time.monotonic()
        worker.start()
        try:
            drained_in = wait_until(lambda: back.stats.queue_batches == 0, 30)
            wait_until(lambda: worker.status().exports_ok >= 4, 5 + MARGIN)
            status = worker.status()
        finally:
            worker.stop(None, 1.0)
    # The drain would have widened the interval had it been judged whole.
    assert drained_in > back.settings.limits.max_export_share * interval, drained_in
    assert worker.interval == interval and status.health is Health.HEALTHY, status
    assert [change.after for change in changes] == [Health.HEALTHY]
    assert not [r for r in caplog.records if "interval widened" in r.getMessage()]
    sent = 'tcp_sent_bytes_total{process_pid="4242",test="backlog"}'
    counted = classic_only.wait_for(f"count_over_time({sent}[5m]) > {backlog}")
    assert counted, classic_only.query(f"count_over_time({sent}[5m])")
    assert time.monotonic() - started < 30


# --- the real run ---------------------------------------------------------------------
@pytest.mark.bpf
def test_a_run_with_native_histograms_to_prometheus_without_them(tmp_path):
    """`ig-metrics run` pushing native histograms to a Prometheus without them:
    the bytes a client sends arrive exactly, and so do the agent's own metrics
    saying what was refused and why (health degraded, points rejected); the
    log gives the fix."""
    from tests.tcp_workload import EchoCountServer, run_client
    from tests.test_run_e2e import start_run, write_profiles

    echo = EchoCountServer(reply_bytes=1_000)
    run = None
    with PrometheusServer([], tmp_path / "prometheus", flags=(RECEIVER,)) as server:
        try:
            profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  to-prometheus:
    type: prometheus-remote-write
    url: http://127.0.0.1:{server.port}/api/v1/write
    histograms: native
profiles:
  rw: {{exporters: [to-prometheus], interval: 1s}}
""")
            run = start_run(profiles, "rw", "--no-tui")
            # A first push means the gadget is attached: the traffic after it is seen.
            assert server.wait_for('count({__name__=~".+"})', timeout=60), run.poll()
            client = run_client("127.0.0.1", echo.port, send_bytes=654_321,
                                name="igm-native")
            echo.wait_for(1)
            query = f'tcp_sent_bytes_total{{process_command="{client.command}"}}'
            assert float(server.wait_for(query, timeout=60)[0]["value"][1]) == 654_321
            degraded = server.wait_for(
                'ig_metrics_exporter_health{otel_component_name="to-prometheus",'
                'ig_metrics_exporter_health="degraded"} == 1', timeout=30)
            rejected = server.wait_for('ig_metrics_export_points_dropped_total'
                                       '{reason="rejected"} > 0', timeout=30)
            assert server.query('{__name__=~"tcp_connect_duration_seconds.*"}') == []
            run.send_signal(signal.SIGTERM)
            _, err = run.communicate(timeout=60)
        finally:
            echo.close()
            if run is not None and run.poll() is None:
                run.kill()
    assert run.returncode == 0, err
    assert degraded and rejected
    assert NATIVE_FIX in err
