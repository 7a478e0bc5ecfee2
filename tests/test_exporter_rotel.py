"""Our OTLP exports read by an independent collector, rotel-agent (Rust, PyPI
package `rotel`): it decodes them, prints them, and forwards them over OTLP/gRPC
to a receiver of ours, where the values must be exactly the snapshot's."""

from __future__ import annotations


import pytest

from ig_metrics.exporters.registry import create_exporter
from ig_metrics.exporters.base import ExportResult
from tests.receivers import (
    OtlpGrpcReceiver, RotelAgent, clear_otel_environment, expected_values, flatten,
    iter_points, otlp_config, require_tool, rotel_agent_path, tcp_like_snapshot,
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


@pytest.mark.parametrize("type_", ["otlp-grpc", "otlp-http"])
def test_rotel_receives_and_forwards_exactly_what_we_sent(rotel, type_):
    agent, forwarded = rotel
    sent = 111_111 if type_ == "otlp-grpc" else 222_222
    snapshot = tcp_like_snapshot(seq=1, sent=sent)
    endpoint = (f"127.0.0.1:{agent.grpc_port}" if type_ == "otlp-grpc"
                else f"http://127.0.0.1:{agent.http_port}")
    exporter = create_exporter(otlp_config("to-rotel", type_, endpoint, insecure=True,
                                           compression="gzip", timeout=5.0))
    exporter.start()
    before = len(forwarded.received)
    try:
        assert exporter.export(snapshot, 5.0) is ExportResult.SUCCESS, exporter.last_failure
    finally:
        exporter.shutdown(1.0)
    received = forwarded.wait_for(before + 1, timeout=20)[before:]
    assert flatten(received) == expected_values(snapshot), agent.output()[-2000:]
    for resource, _, _ in iter_points(received):
        assert resource["service.name"] == "ig-metrics"
    printed = agent.output()
    assert "Name: tcp.connect.duration" in printed
    assert f"Value: {sent}" in printed
