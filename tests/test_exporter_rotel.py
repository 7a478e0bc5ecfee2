"""Our OTLP exports read by an independent collector, rotel-agent (Rust, PyPI
package `rotel`): it decodes them, prints them, and forwards them over OTLP/gRPC
to a receiver of ours, where the values must be exactly the snapshot's."""

from __future__ import annotations

import pytest

from ig_metrics.exporters.base import ExportResult
from ig_metrics.exporters.registry import create_exporter
from tests.receivers import (
    OtlpGrpcReceiver,
    RotelAgent,
    clear_otel_environment,
    expected_values,
    flatten,
    iter_points,
    otlp_config,
    require_tool,
    rotel_agent_path,
    tcp_like_snapshot,
)


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


@pytest.fixture(scope="module")
def rotel(tmp_path_factory):
    binary = require_tool(rotel_agent_path(), "rotel-agent (PyPI package `rotel`)")
    with OtlpGrpcReceiver() as forwarded:
        with RotelAgent(binary, tmp_path_factory.mktemp("rotel"),
                        f"http://{forwarded.endpoint}") as agent:
            yield agent, forwarded


def send_through(rotel, type_: str, snapshot, **settings) -> list:
    """Exports `snapshot` to rotel-agent; what rotel forwarded of it."""
    agent, forwarded = rotel
    endpoint = (f"127.0.0.1:{agent.grpc_port}" if type_ == "otlp-grpc"
                else f"http://127.0.0.1:{agent.http_port}")
    exporter = create_exporter(otlp_config("to-rotel", type_, endpoint, insecure=True,
                                           timeout=5.0, **settings))
    exporter.start()
    before = len(forwarded.received)
    try:
        assert exporter.export(snapshot, 5.0) is ExportResult.SUCCESS, exporter.last_failure
    finally:
        exporter.shutdown(1.0)
    return forwarded.wait_for(before + 1, timeout=20)[before:]


@pytest.mark.parametrize("type_", ["otlp-grpc", "otlp-http"])
def test_rotel_receives_and_forwards_exactly_what_we_sent(rotel, type_):
    agent, _ = rotel
    sent = 111_111 if type_ == "otlp-grpc" else 222_222
    snapshot = tcp_like_snapshot(seq=1, sent=sent)
    received = send_through(rotel, type_, snapshot, compression="gzip")
    assert flatten(received) == expected_values(snapshot), agent.output()[-2000:]
    for resource, _, _ in iter_points(received):
        assert resource["service.name"] == "ig-metrics"
    printed = agent.output()
    assert "Name: tcp.connect.duration" in printed
    assert f"Value: {sent}" in printed


@pytest.mark.parametrize("type_,temporality", [("otlp-grpc", "delta"),
                                               ("otlp-http", "cumulative")])
def test_rotel_takes_exponential_histograms_whose_buckets_are_the_kernel_slots(
        rotel, type_, temporality):
    """histograms: exponential. rotel decodes and forwards the request; the
    forwarded ExponentialHistogram (parsed with opentelemetry-proto) has scale 0,
    the zero bucket = slot 0, and bucket_counts = slots 1.. in order, slot k at
    OTLP bucket k - 21 for microseconds (bucket j holds (2^j, 2^(j+1)] s)."""
    agent, _ = rotel
    snapshot = tcp_like_snapshot(seq=1, sent=333_333)
    (histogram,) = snapshot.metric("tcp.connect.duration").points
    slots = histogram.value.counts
    received = send_through(rotel, type_, snapshot, temporality=temporality,
                            histograms="exponential")
    points = [(metric, point) for _, metric, point in iter_points(received)
              if metric.name == "tcp.connect.duration"]
    assert len(points) == 1, agent.output()[-2000:]
    metric, point = points[0]
    assert metric.WhichOneof("data") == "exponential_histogram"
    assert metric.exponential_histogram.aggregation_temporality == (
        2 if temporality == "cumulative" else 1)
    assert (point.scale, point.zero_count, point.count, point.sum) == (
        0, slots[0], histogram.value.count, histogram.value.sum)
    assert point.positive.offset == 1 - 21          # slot 1 (1 us) is OTLP bucket -20
    # Slots 1 .. 11, then the overflow (5000 us) in the bucket after slot 11's.
    last = max(index for index, count in enumerate(slots) if count)
    assert list(point.positive.bucket_counts) == list(slots[1:last + 1])
    assert "DataType: ExponentialHistogram" in agent.output()
