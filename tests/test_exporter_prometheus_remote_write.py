"""The prometheus-remote-write exporter against the real Prometheus 2.42 as its
receiver (--web.enable-remote-write-receiver): exact counts come back from
PromQL, native histograms too; an outage of the receiver (stopped, started
again on the same TSDB) loses no sample and counts nothing twice; a wrong
password is said once, with a clear health state, and not hammered."""

from __future__ import annotations

import logging
import signal
import time

import bcrypt
import pytest

from ig_metrics.exporters.base import Health
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.exporters.remotewrite.exporter import BasicCredentials, RemoteWriteSettings
from tests.receivers import (
    PrometheusServer,
    exporter_config,
    make_tls_files,
    tcp_like_snapshot,
)

RECEIVER = "--web.enable-remote-write-receiver"
FAST_RETRY = RetrySettings(initial=0.05, max=0.3)
PASSWORD = "the-right-one"
USERS = {"ig": (PASSWORD, bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode())}


def remote_write_config(name: str, url: str, **settings):
    secrets = frozenset({"basic_auth.password"} if "basic_auth" in settings else ())
    return exporter_config(name, "prometheus-remote-write",
                           RemoteWriteSettings(url=url, retry=FAST_RETRY, **settings),
                           secrets=secrets)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    """One Prometheus behind basic auth, taking remote write and native histograms."""
    with PrometheusServer([], tmp_path_factory.mktemp("receiver"), users=USERS,
                          flags=(RECEIVER, "--enable-feature=native-histograms")) as server:
        yield server


def test_counters_and_native_histograms_come_back_exactly(receiver):
    from ig_metrics.exporters.registry import create_exporter

    exporter = create_exporter(remote_write_config(
        "to-prometheus", f"http://127.0.0.1:{receiver.port}/api/v1/write",
        basic_auth=BasicCredentials("ig", PASSWORD), histograms="native",
        external_labels=(("cluster", "test-1"),)))
    exporter.start()
    try:
        for seq in (1, 2):
            snapshot = tcp_like_snapshot(seq, sent=123_456 * seq, time_ns=time.time_ns())
            exporter.accept(snapshot)
            assert exporter.send(5.0).value == "success", exporter.last_failure
    finally:
        exporter.shutdown(1.0)
    (histogram,) = snapshot.metric("tcp.connect.duration").points
    sent = receiver.wait_for('tcp_sent_bytes_total{process_pid="4242",cluster="test-1"}')
    assert float(sent[0]["value"][1]) == 246_912
    samples = receiver.query('count_over_time(tcp_sent_bytes_total{process_pid="4242"}[5m])')
    assert float(samples[0]["value"][1]) == 2
    native = 'tcp_connect_duration_seconds{process_pid="4242"}'
    assert float(receiver.query(f"histogram_count({native})")[0]["value"][1]) \
        == histogram.value.count
    assert float(receiver.query(f"histogram_sum({native})")[0]["value"][1]) \
        == histogram.value.sum
    assert receiver.query("tcp_connect_duration_seconds_bucket") == []


def test_mutual_tls_to_a_receiver_that_requires_a_client_certificate(tmp_path):
    from ig_metrics.exporters.otlp.common import TlsSettings
    from ig_metrics.exporters.registry import create_exporter

    files = make_tls_files(tmp_path / "tls")
    with PrometheusServer([], tmp_path / "tls-receiver", flags=(RECEIVER,),
                          tls=files) as server:
        url = f"https://127.0.0.1:{server.port}/api/v1/write"
        sent = {}
        for name, tls in (("with-certificate", TlsSettings(files.ca, files.client_cert,
                                                           files.client_key)),
                          ("without-certificate", TlsSettings(files.ca))):
            exporter = create_exporter(remote_write_config(
                name, url, tls=tls, external_labels=(("sender", name),)))
            exporter.start()
            try:
                exporter.accept(tcp_like_snapshot(1, sent=777, time_ns=time.time_ns()))
                sent[name] = (exporter.send(5.0).value, exporter.last_failure)
            finally:
                exporter.shutdown(1.0)
        result = server.wait_for('tcp_sent_bytes_total{process_pid="4242"}')
    assert sent["with-certificate"] == ("success", "")
    assert sent["without-certificate"][0] == "failure"
    assert "TLS" in sent["without-certificate"][1]
    assert [(r["metric"]["sender"], r["value"][1]) for r in result] \
        == [("with-certificate", "777")]


def test_a_wrong_password_is_said_once_with_a_clear_health_state(receiver, caplog):
    from tests.test_exporter_faults import Sampler, wait_until, worker_for

    caplog.set_level(logging.INFO, logger="ig_metrics.exporters")
    config = remote_write_config("locked-out", f"http://127.0.0.1:{receiver.port}/api/v1/write",
                                 basic_auth=BasicCredentials("ig", "not-the-password"))
    with Sampler() as sampler:
        worker = worker_for(config, sampler, interval=0.3)
        try:
            # Refused, then three more intervals' batches refused (each dropped):
            # the error must still have been said only once.
            wait_until(lambda: worker.status().health is Health.FAILING)
            refused = worker.status().exports_failed
            wait_until(lambda: worker.status().exports_failed >= refused + 3)
            status = worker.status()
        finally:
            worker.stop(None, 1.0)
    assert status.health is Health.FAILING
    assert "HTTP 401" in status.last_error and "not retried" in status.last_error
    errors = [record.getMessage() for record in caplog.records
              if record.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "check basic_auth" in errors[0] and "profiles/test.yaml:3" in errors[0]
    assert "not-the-password" not in caplog.text
    assert status.points_dropped > 0          # each refused batch dropped and counted


@pytest.mark.bpf
def test_exact_bytes_survive_a_receiver_outage_once_each(tmp_path):
    """Real traffic under `ig-metrics run`: a client sends 987,654 bytes; the
    receiver is stopped, then started again on the same TSDB; the samples of
    the outage arrive afterwards (queued, oldest first) and every one says
    987,654, never more."""
    from tests.tcp_workload import EchoCountServer, run_client
    from tests.test_run_e2e import start_run, write_profiles

    server = PrometheusServer([], tmp_path / "prometheus", flags=(RECEIVER,)).start()
    echo = EchoCountServer(reply_bytes=1_000)
    run = None
    try:
        profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  to-prometheus:
    type: prometheus-remote-write
    url: http://127.0.0.1:{server.port}/api/v1/write
    retry: {{initial: 100ms, max: 500ms}}
profiles:
  rw: {{exporters: [to-prometheus], interval: 1s}}
""")
        run = start_run(profiles, "rw", "--no-tui")
        # A first push means the gadget is attached: the traffic after it is seen.
        assert server.wait_for('count({__name__=~".+"})', timeout=60), run.poll()
        client = run_client("127.0.0.1", echo.port, send_bytes=987_654, name="igm-rw")
        echo.wait_for(1)
        query = f'tcp_sent_bytes_total{{process_command="{client.command}"}}'
        assert float(server.wait_for(query, timeout=60)[0]["value"][1]) == 987_654
        server.stop()
        stopped = time.time()
        time.sleep(3.5)
        restarted = time.time()
        server.start()
        # The outage's samples arrive once the queue drains.
        deadline = time.monotonic() + 30
        while True:
            samples = [(float(at), float(value)) for at, value in
                       server.query(f"{query}[10m]")[0]["values"]]
            inside = [at for at, _ in samples if stopped + 0.5 < at < restarted - 0.5]
            if len(inside) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        echo.close()
        if run is not None and run.poll() is None:
            run.kill()
        server.stop()
    assert run.returncode == 0, err
    assert len(inside) >= 2, (samples, stopped, restarted, err[-2000:])
    assert {value for _, value in samples} == {987_654.0}
    timestamps = [at for at, _ in samples]
    assert timestamps == sorted(set(timestamps))          # one sample per reading
    assert "exporter to-prometheus" in err                 # the outage was noticed


@pytest.mark.parametrize("status, retryable, retry_after", [
    (500, True, 7.0), (503, True, 7.0), (429, True, 7.0), (400, False, None),
    (404, False, None)])
def test_statuses_remote_write_retries_and_those_it_does_not(status, retryable, retry_after):
    """A stand-in receiver (a real HTTP server) answering one status, as a
    remote write receiver may: 5xx and 429 are retried (Retry-After honoured),
    any other 4xx is final and drops the batch, counted as rejected."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ig_metrics.exporters.registry import create_exporter

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"no thanks")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exporter = create_exporter(remote_write_config(
        "refused", f"http://127.0.0.1:{server.server_address[1]}/api/v1/write"))
    exporter.start()
    try:
        snapshot = tcp_like_snapshot(1)
        exporter.accept(snapshot)
        assert exporter.send(5.0).value == "failure"
        failure = exporter.failure
    finally:
        exporter.shutdown(1.0)
        server.shutdown()
    assert (failure.retryable, failure.retry_after) == (retryable, retry_after)
    assert f"HTTP {status}" in failure.message and "no thanks" in failure.message
    assert len(exporter.queue) == (1 if retryable else 0)
    assert exporter.stats.dropped_by_reason() == (
        {} if retryable else {"rejected": snapshot.point_count})


def test_samples_queued_in_a_directory_are_delivered_by_the_next_run(receiver, tmp_path):
    """Receiver unreachable: two snapshots wait in queue.dir; the exporter shuts
    down (an ig-metrics stopped during an outage). The next one with the same
    directory delivers both samples, each at its own time, and nothing else."""
    from ig_metrics.exporters.delivery.queue import QueueSettings
    from ig_metrics.exporters.registry import create_exporter
    from tests.receivers import free_port

    queue = QueueSettings(dir=tmp_path / "queue")
    auth = BasicCredentials("ig", PASSWORD)
    down = create_exporter(remote_write_config(
        "queued", f"http://127.0.0.1:{free_port()}/api/v1/write", basic_auth=auth,
        queue=queue, external_labels=(("run", "queued"),)))
    down.start()
    now = time.time_ns()
    times = [now - 20_000_000_000, now - 10_000_000_000]
    try:
        for seq, time_ns in enumerate(times, 1):
            down.accept(tcp_like_snapshot(seq, sent=5_000 * seq, time_ns=time_ns))
            assert down.send(2.0).value == "failure"
    finally:
        down.shutdown(1.0)
    back = create_exporter(remote_write_config(
        "queued", f"http://127.0.0.1:{receiver.port}/api/v1/write", basic_auth=auth,
        queue=queue, external_labels=(("run", "queued"),)))
    back.start()
    try:
        assert back.send(5.0).value == "success", back.last_failure
        assert len(back.queue) == 0
    finally:
        back.shutdown(1.0)
    result = receiver.query('tcp_sent_bytes_total{process_pid="4242",run="queued"}[5m]')
    assert [(int(float(at) * 1000), float(value)) for at, value in result[0]["values"]] \
        == [(times[0] // 1_000_000, 5_000.0), (times[1] // 1_000_000, 10_000.0)]
