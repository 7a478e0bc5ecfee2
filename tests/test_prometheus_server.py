"""A real Prometheus server scrapes the prometheus exporter and answers PromQL:
the exact counter value, and histogram_quantile on our classic buckets."""

from __future__ import annotations

import pytest

from ig_metrics.exporters.registry import create_exporter
from tests.receivers import (
    PROMETHEUS,
    PrometheusServer,
    prometheus_config,
    require_tool,
    tcp_like_snapshot,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    require_tool(PROMETHEUS, "prometheus (Debian package `prometheus`)")
    exporter = create_exporter(prometheus_config("prom-local"))
    exporter.start()
    exporter.export(tcp_like_snapshot(sent=123_456_789), 1.0)
    with PrometheusServer([f"127.0.0.1:{exporter.bound_port}"],
                          tmp_path_factory.mktemp("prometheus")) as server:
        result = server.wait_for('tcp_sent_bytes_total{process_pid="4242"}')
        assert result, server.output()
        yield server
    exporter.shutdown(2.0)


def test_promql_returns_the_exact_counter_value(served):
    [series] = served.query('tcp_sent_bytes_total{process_pid="4242"}')
    assert series["value"][1] == "123456789"
    assert series["metric"]["job"] == "ig-metrics"
    assert series["metric"]["network_peer_address"] == "127.0.0.1"
    [ipv6] = served.query('tcp_sent_bytes_total{network_peer_address="2001:db8::1"}')
    assert ipv6["value"][1] == "2048"


def test_histogram_quantile_works_on_our_buckets(served):
    # 6 observations: 1, 3, 3, 4, 2047, 5000 us. The median (3rd) is the top of
    # bucket (1e-06, 3e-06], which holds the 2nd and 3rd: linear interpolation
    # gives exactly its upper bound.
    [median] = served.query("histogram_quantile(0.5, tcp_connect_duration_seconds_bucket)")
    assert float(median["value"][1]) == pytest.approx(3e-06, rel=1e-9)
    # The 99th percentile is in the +Inf bucket: Prometheus answers with the
    # highest finite bound, the kernel's last slot.
    [p99] = served.query("histogram_quantile(0.99, tcp_connect_duration_seconds_bucket)")
    assert float(p99["value"][1]) == pytest.approx(0.002047, rel=1e-9)
    [count] = served.query("tcp_connect_duration_seconds_count")
    assert count["value"][1] == "6"


def test_target_info_can_be_joined(served):
    [joined] = served.query(
        'tcp_sent_bytes_total{process_pid="4242"} * on(job, instance) '
        'group_left(host_name) target_info')
    assert joined["metric"]["host_name"] == "node-1"
    assert joined["value"][1] == "123456789"
