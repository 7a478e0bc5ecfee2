"""otlp-grpc and otlp-http exporters against real gRPC and HTTP receivers on
loopback: exact values, endpoint forms, headers, gzip, TLS and mTLS, delta
temporality, and failures whose messages keep secrets out."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from ig_metrics.exporters.base import ExporterStartError, ExportResult, Health
from ig_metrics.exporters.delivery.worker import ExporterWorker
from ig_metrics.exporters.otlp.common import TlsSettings
from ig_metrics.exporters.registry import create_exporter
from ig_metrics.model.snapshot import HistogramValue, MetricData, Point, Snapshot
from tests.receivers import (
    RESOURCE,
    START_NS,
    UNAVAILABLE,
    HistogramSeen,
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    clear_otel_environment,
    expected_values,
    flatten,
    iter_points,
    make_tls_files,
    otlp_config,
    tcp_like_snapshot,
)

SECRET = "tenant-s3cret-value"


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def grpc_receiver():
    with OtlpGrpcReceiver() as receiver:
        yield receiver


@pytest.fixture
def http_receiver():
    with OtlpHttpReceiver() as receiver:
        yield receiver


def started(config):
    exporter = create_exporter(config)
    exporter.start()
    return exporter


def export_once(config, snapshot: Snapshot) -> tuple[ExportResult, str]:
    exporter = started(config)
    try:
        result = exporter.export(snapshot, exporter.export_timeout)
        return result, exporter.last_failure
    finally:
        exporter.shutdown(1.0)


# --- exact round trips --------------------------------------------------------------
def test_grpc_delivers_exactly_the_snapshot(grpc_receiver):
    snapshot = tcp_like_snapshot()
    config = otlp_config("central", "otlp-grpc", grpc_receiver.endpoint, insecure=True)
    assert export_once(config, snapshot) == (ExportResult.SUCCESS, "")
    received = grpc_receiver.wait_for(1)
    assert flatten(received) == expected_values(snapshot)
    for resource, metric, point in iter_points(received):
        assert resource == dict(RESOURCE)
        assert point.time_unix_nano == snapshot.time_ns
        if metric.WhichOneof("data") != "gauge":
            assert point.start_time_unix_nano == START_NS


def test_http_delivers_exactly_the_snapshot_to_v1_metrics(http_receiver):
    snapshot = tcp_like_snapshot()
    # No path in the URL: /v1/metrics is appended, as config documents.
    config = otlp_config("web", "otlp-http", f"http://127.0.0.1:{http_receiver.port}")
    assert export_once(config, snapshot) == (ExportResult.SUCCESS, "")
    [received] = http_receiver.wait_for(1)
    assert received.path == "/v1/metrics"
    assert received.headers["content-type"] == "application/x-protobuf"
    assert flatten([received]) == expected_values(snapshot)


def test_http_keeps_a_path_given_in_the_url():
    with OtlpHttpReceiver(path="/otlp/v1/metrics") as receiver:
        config = otlp_config("web", "otlp-http", receiver.url())
        assert export_once(config, tcp_like_snapshot())[0] is ExportResult.SUCCESS
        assert receiver.wait_for(1)[0].path == "/otlp/v1/metrics"


def test_histogram_bounds_counts_and_unset_min_max_arrive(grpc_receiver):
    config = otlp_config("central", "otlp-grpc", grpc_receiver.endpoint, insecure=True)
    export_once(config, tcp_like_snapshot())
    histograms = [value for (name, _), value in flatten(grpc_receiver.wait_for(1)).items()
                  if name == "tcp.connect.duration"]
    assert histograms == [HistogramSeen(
        (0.0, 1e-06, 3e-06, 7e-06, 1.5e-05, 3.1e-05, 6.3e-05, 0.000127, 0.000255, 0.000511,
         0.001023, 0.002047), (0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1), 0.007058, 6,
        has_min=False, has_max=False)]


def test_a_large_snapshot_is_split_into_requests_that_add_up(grpc_receiver):
    info = tcp_like_snapshot().metrics[0].info
    points = tuple(Point((("process.pid", pid),), pid * 3, START_NS) for pid in range(2500))
    snapshot = Snapshot(1, START_NS + 1, "tcp", RESOURCE, (MetricData(info, points),))
    config = otlp_config("central", "otlp-grpc", grpc_receiver.endpoint, insecure=True)
    assert export_once(config, snapshot)[0] is ExportResult.SUCCESS
    received = grpc_receiver.wait_for(3)
    sizes = [sum(1 for _ in iter_points([item])) for item in received]
    assert sizes == [1000, 1000, 500]
    assert flatten(received) == expected_values(snapshot)


# --- endpoint forms -----------------------------------------------------------------
def test_grpc_http_scheme_means_plaintext(grpc_receiver):
    config = otlp_config("central", "otlp-grpc", f"http://{grpc_receiver.endpoint}")
    assert export_once(config, tcp_like_snapshot())[0] is ExportResult.SUCCESS


def test_grpc_ipv6_endpoint():
    with OtlpGrpcReceiver(host="::1") as receiver:
        config = otlp_config("central", "otlp-grpc", receiver.endpoint, insecure=True)
        assert receiver.endpoint.startswith("[::1]:")
        assert export_once(config, tcp_like_snapshot())[0] is ExportResult.SUCCESS
        assert receiver.wait_for(1)


def test_grpc_host_port_without_insecure_means_tls(grpc_receiver):
    config = otlp_config("central", "otlp-grpc", grpc_receiver.endpoint, timeout=1.0)
    result, failure = export_once(config, tcp_like_snapshot())
    assert result is ExportResult.FAILURE
    assert "UNAVAILABLE" in failure
    assert grpc_receiver.received == []


# --- headers and compression --------------------------------------------------------
def test_headers_arrive_on_both_transports(grpc_receiver, http_receiver):
    headers = (("x-tenant", SECRET), ("x-scope", "edge"))
    export_once(otlp_config("g", "otlp-grpc", grpc_receiver.endpoint, insecure=True,
                            headers=headers), tcp_like_snapshot())
    export_once(otlp_config("h", "otlp-http", http_receiver.url(), headers=headers),
                tcp_like_snapshot())
    for received in (grpc_receiver.wait_for(1)[0], http_receiver.wait_for(1)[0]):
        assert (received.headers["x-tenant"], received.headers["x-scope"]) == (SECRET, "edge")


def test_http_gzip_is_really_compressed(http_receiver):
    snapshot = tcp_like_snapshot()
    export_once(otlp_config("h", "otlp-http", http_receiver.url(), compression="gzip"), snapshot)
    export_once(otlp_config("h", "otlp-http", http_receiver.url()), snapshot)
    zipped, plain = http_receiver.wait_for(2)
    assert zipped.content_encoding == "gzip" and plain.content_encoding == ""
    assert plain.body_size == plain.request.ByteSize()
    assert zipped.body_size < plain.body_size / 2
    assert flatten([zipped]) == flatten([plain]) == expected_values(snapshot)


def test_grpc_gzip_round_trip(grpc_receiver):
    snapshot = tcp_like_snapshot()
    config = otlp_config("g", "otlp-grpc", grpc_receiver.endpoint, insecure=True,
                         compression="gzip")
    assert export_once(config, snapshot)[0] is ExportResult.SUCCESS
    assert flatten(grpc_receiver.wait_for(1)) == expected_values(snapshot)


# --- TLS ----------------------------------------------------------------------------
def test_tls_with_ca_file(tls):
    snapshot = tcp_like_snapshot()
    server = (tls.server_cert, tls.server_key, None)
    with OtlpGrpcReceiver(tls=server) as grpc_rx, OtlpHttpReceiver(tls=server) as http_rx:
        ca = TlsSettings(ca_file=tls.ca)
        assert export_once(otlp_config("g", "otlp-grpc", grpc_rx.endpoint, tls=ca),
                           snapshot) == (ExportResult.SUCCESS, "")
        assert export_once(otlp_config("h", "otlp-http", http_rx.url("https"), tls=ca),
                           snapshot) == (ExportResult.SUCCESS, "")
        assert flatten(grpc_rx.wait_for(1)) == flatten(http_rx.wait_for(1)) \
            == expected_values(snapshot)


def test_http_ca_file_wins_over_requests_ca_bundle(tls, monkeypatch):
    """requests alone would check against $REQUESTS_CA_BUNDLE instead of ca_file."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    with OtlpHttpReceiver(tls=(tls.server_cert, tls.server_key, None)) as receiver:
        config = otlp_config("h", "otlp-http", receiver.url("https"),
                             tls=TlsSettings(ca_file=tls.ca), timeout=2.0)
        assert export_once(config, tcp_like_snapshot()) == (ExportResult.SUCCESS, "")


def test_mutual_tls_needs_the_client_certificate(tls):
    server = (tls.server_cert, tls.server_key, tls.ca)
    with_client = TlsSettings(ca_file=tls.ca, cert_file=tls.client_cert, key_file=tls.client_key)
    without_client = TlsSettings(ca_file=tls.ca)
    with OtlpGrpcReceiver(tls=server) as grpc_rx, OtlpHttpReceiver(tls=server) as http_rx:
        for type_, endpoint in (("otlp-grpc", grpc_rx.endpoint),
                                ("otlp-http", http_rx.url("https"))):
            ok = otlp_config("m", type_, endpoint, tls=with_client, timeout=1.0)
            refused = otlp_config("m", type_, endpoint, tls=without_client, timeout=1.0)
            assert export_once(ok, tcp_like_snapshot()) == (ExportResult.SUCCESS, "")
            assert export_once(refused, tcp_like_snapshot())[0] is ExportResult.FAILURE
        assert len(grpc_rx.received) == len(http_rx.received) == 1


def test_a_certificate_from_another_ca_is_refused(tls, tmp_path):
    other = make_tls_files(tmp_path, "other")
    server = (tls.server_cert, tls.server_key, None)
    with OtlpGrpcReceiver(tls=server) as grpc_rx, OtlpHttpReceiver(tls=server) as http_rx:
        wrong = TlsSettings(ca_file=other.ca)
        grpc_result = export_once(otlp_config("g", "otlp-grpc", grpc_rx.endpoint, tls=wrong,
                                              timeout=1.0), tcp_like_snapshot())
        http_result = export_once(otlp_config("h", "otlp-http", http_rx.url("https"),
                                              tls=wrong, timeout=1.0), tcp_like_snapshot())
        assert grpc_result[0] is http_result[0] is ExportResult.FAILURE
        assert "CERTIFICATE_VERIFY_FAILED" in http_result[1]
        assert grpc_rx.received == http_rx.received == []


@pytest.mark.parametrize("type_", ["otlp-grpc", "otlp-http"])
def test_unreadable_tls_file_fails_at_start(type_, tmp_path):
    endpoint = "127.0.0.1:4317" if type_ == "otlp-grpc" else "https://127.0.0.1:4318"
    config = otlp_config("central", type_, endpoint, tls=TlsSettings(ca_file=tmp_path / "no.pem"))
    with pytest.raises(ExporterStartError) as raised:
        create_exporter(config).start()
    assert str(raised.value) == (
        f"exporter central: cannot read tls.ca_file {tmp_path / 'no.pem'}: No such file or "
        f"directory — fix it in profiles/test.yaml:3")


# --- delta temporality --------------------------------------------------------------
def grown(snapshot: Snapshot, seq: int, **changes: int) -> Snapshot:
    """`snapshot` read 10 s later, with tcp.sent of pid 4242 grown by `sent`."""
    sent = snapshot.metrics[0]
    first = sent.points[0]
    points = (first._replace(value=first.value + changes.get("sent", 0)),) + sent.points[1:]
    return replace(snapshot, seq=seq, time_ns=snapshot.time_ns + 10_000_000_000,
                   metrics=(replace(sent, points=points),) + snapshot.metrics[1:])


def sent_by_pid(received) -> dict[int, tuple[int, int, int]]:
    """pid -> (value, start, time) of every tcp.sent point received."""
    return {dict((kv.key, kv.value.int_value) for kv in point.attributes)["process.pid"]:
            (point.as_int, point.start_time_unix_nano, point.time_unix_nano)
            for _, metric, point in iter_points(received) if metric.name == "tcp.sent"}


@pytest.mark.parametrize("type_", ["otlp-grpc", "otlp-http"])
def test_delta_exports_differences_between_snapshots(type_, grpc_receiver, http_receiver):
    receiver = grpc_receiver if type_ == "otlp-grpc" else http_receiver
    endpoint = grpc_receiver.endpoint if type_ == "otlp-grpc" else http_receiver.url()
    exporter = started(otlp_config("d", type_, endpoint, insecure=True, temporality="delta"))
    first = tcp_like_snapshot(seq=1)
    second = grown(first, 2, sent=500)
    # pid 4343's histogram-less series restarted: new start time, smaller value.
    peer6 = second.metrics[0].points[1]
    restarted = peer6._replace(value=40, start_time_ns=first.time_ns + 5)
    second = replace(second, metrics=(replace(second.metrics[0], points=(
        second.metrics[0].points[0], restarted, second.metrics[0].points[2])),)
        + second.metrics[1:])
    assert exporter.export(first, 5.0) is ExportResult.SUCCESS
    assert exporter.export(second, 5.0) is ExportResult.SUCCESS
    exporter.shutdown(1.0)
    one, two = receiver.wait_for(2)
    assert flatten([one]) == expected_values(first)    # a first delta is the whole value
    for _, metric, _ in iter_points([one, two]):
        if metric.WhichOneof("data") in ("sum", "histogram"):
            temporality = getattr(metric, metric.WhichOneof("data")).aggregation_temporality
            assert temporality == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    assert sent_by_pid([two]) == {
        4242: (500, first.time_ns, second.time_ns),            # grew by 500
        4343: (40, first.time_ns + 5, second.time_ns),          # restarted: all of it
    }
    # Unchanged series (the third tcp.sent, the histogram, the counters) are left
    # out; the gauge is passed as it is.
    names = sorted(metric.name for _, metric, _ in iter_points([two]))
    assert names == ["ig_metrics.series", "tcp.sent", "tcp.sent"]


def test_a_failed_delta_interval_is_queued_and_sent_before_the_next(grpc_receiver):
    exporter = started(otlp_config("d", "otlp-grpc", grpc_receiver.endpoint, insecure=True,
                                   temporality="delta", timeout=1.0))
    first = tcp_like_snapshot(seq=1)
    second, third = grown(first, 2, sent=100), grown(first, 3, sent=250)
    third = replace(third, time_ns=second.time_ns + 10_000_000_000)
    assert exporter.export(first, 1.0) is ExportResult.SUCCESS
    grpc_receiver.behaviour = UNAVAILABLE
    assert exporter.export(second, 1.0) is ExportResult.FAILURE
    assert exporter.stats.queue_batches == 1
    grpc_receiver.behaviour = "ok"
    assert exporter.export(third, 1.0) is ExportResult.SUCCESS
    assert exporter.stats.queue_batches == 0
    exporter.shutdown(1.0)
    _, queued, latest = grpc_receiver.wait_for(3)
    # Each interval keeps its own bounds: nothing folded, nothing lost.
    assert sent_by_pid([queued]) == {4242: (100, first.time_ns, second.time_ns)}
    assert sent_by_pid([latest]) == {4242: (150, second.time_ns, third.time_ns)}


def test_delta_histograms_subtract_bucket_by_bucket(grpc_receiver):
    exporter = started(otlp_config("d", "otlp-grpc", grpc_receiver.endpoint, insecure=True,
                                   temporality="delta"))
    first, tripled = tcp_like_snapshot(seq=1), tcp_like_snapshot(seq=2, scale=3)
    exporter.export(first, 5.0)
    exporter.export(tripled, 5.0)
    exporter.shutdown(1.0)
    _, two = grpc_receiver.wait_for(2)
    [histogram] = [value for (name, _), value in flatten([two]).items()
                   if name == "tcp.connect.duration"]
    original = first.metrics[2].points[0].value
    assert isinstance(original, HistogramValue)
    assert histogram.counts == tuple(2 * count for count in original.counts)
    assert histogram.count == 2 * original.count
    assert histogram.sum == pytest.approx(2 * original.sum, rel=1e-12)


# --- failures keep secrets out ------------------------------------------------------
@pytest.mark.parametrize("type_", ["otlp-grpc", "otlp-http"])
def test_failure_reason_never_shows_a_header_value(type_, caplog):
    """The receivers quote the request's headers in their error, as a careless
    collector might: the status and every log line show *** instead."""
    caplog.set_level(logging.DEBUG)
    receiver = (OtlpGrpcReceiver if type_ == "otlp-grpc" else OtlpHttpReceiver)(
        behaviour=UNAVAILABLE, echo_headers=True)
    with receiver:
        endpoint = receiver.endpoint if type_ == "otlp-grpc" else receiver.url()
        exporter = started(otlp_config("secretive", type_, endpoint, insecure=True,
                                       headers=(("x-tenant", SECRET),), timeout=1.0))
        snapshot = tcp_like_snapshot()
        worker = ExporterWorker(exporter, 60.0, lambda: snapshot)
        worker.start()
        try:
            wait_until(lambda: worker.status().exports_failed >= 1)
        finally:
            worker.stop(None, 2.0)
    status = worker.status()
    assert status.health is Health.STOPPED
    assert "***" in status.last_error and SECRET not in status.last_error
    assert any("degraded" in record.getMessage() for record in caplog.records)
    assert not [record for record in caplog.records if SECRET in record.getMessage()]


def test_an_endpoint_from_the_environment_is_not_shown(grpc_receiver):
    config = otlp_config("hidden", "otlp-grpc", grpc_receiver.endpoint, insecure=True,
                         timeout=1.0)
    config = replace(config, template=replace(config.template, secrets=frozenset({"endpoint"})))
    grpc_receiver.behaviour = UNAVAILABLE
    exporter = create_exporter(config)
    assert exporter.target == "***"
    exporter.start()
    assert exporter.export(tcp_like_snapshot(), 1.0) is ExportResult.FAILURE
    exporter.shutdown(1.0)
    assert "UNAVAILABLE" in exporter.last_failure
    assert grpc_receiver.endpoint not in exporter.last_failure


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
