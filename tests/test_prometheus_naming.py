"""OpenTelemetry -> Prometheus metric and label names, as the OTel
Prometheus-compatibility specification translates them."""

from __future__ import annotations

import pytest

from ig_metrics.exporters.prometheus.naming import (
    label_name,
    label_plan,
    label_value,
    prometheus_metric_name,
)
from ig_metrics.model.snapshot import COUNTER, GAUGE, HISTOGRAM


@pytest.mark.parametrize("name, unit, kind, expected", [
    # The tcp gadget's metrics (DESIGN.md)
    ("tcp.sent", "By", COUNTER, "tcp_sent_bytes_total"),
    ("tcp.received", "By", COUNTER, "tcp_received_bytes_total"),
    ("tcp.connections.opened", "{connection}", COUNTER, "tcp_connections_opened_total"),
    ("tcp.retransmits", "{segment}", COUNTER, "tcp_retransmits_total"),
    ("tcp.connect.duration", "s", HISTOGRAM, "tcp_connect_duration_seconds"),
    # Units
    ("io.time", "ms", HISTOGRAM, "io_time_milliseconds"),
    ("queue.wait", "ns", GAUGE, "queue_wait_nanoseconds"),
    ("memory.usage", "MiBy", GAUGE, "memory_usage_mebibytes"),
    ("cpu.utilization", "1", GAUGE, "cpu_utilization_ratio"),     # ratio: gauges only
    ("events", "1", COUNTER, "events_total"),
    ("net.throughput", "By/s", GAUGE, "net_throughput_bytes_per_second"),
    ("packets.rate", "{packet}/s", GAUGE, "packets_rate_per_second"),
    ("odd", "widgets", GAUGE, "odd_widgets"),                      # unknown unit kept
    # No duplicate suffixes
    ("requests.total", "{request}", COUNTER, "requests_total"),
    ("sent.bytes", "By", COUNTER, "sent_bytes_total"),
    ("sent.bytes.total", "By", COUNTER, "sent_bytes_total"),
    ("latency.seconds", "s", HISTOGRAM, "latency_seconds"),
    # Invalid characters and their runs become one underscore; no leading digit
    ("http.server/request-count", "", COUNTER, "http_server_request_count_total"),
    ("a..b__c", "", GAUGE, "a_b_c"),
    ("2xx.responses", "", COUNTER, "_2xx_responses_total"),
])
def test_metric_names(name, unit, kind, expected):
    assert prometheus_metric_name(name, unit, kind) == expected


@pytest.mark.parametrize("attribute, expected", [
    ("process.pid", "process_pid"),
    ("network.peer.address", "network_peer_address"),
    ("k8s.pod.name", "k8s_pod_name"),
    ("http-method", "http_method"),
    ("0day", "key_0day"),
    ("__reserved", "key__reserved"),
    ("_private", "_private"),
])
def test_label_names(attribute, expected):
    assert label_name(attribute) == expected


def test_label_values_are_strings_and_booleans_lowercase():
    assert [label_value(v) for v in (4242, True, False, "::1")] == ["4242", "true", "false", "::1"]


def test_attributes_colliding_after_sanitising_share_one_label():
    plan = label_plan(("b.x", "a.b", "a_b"))
    assert plan.names == ("b_x", "a_b")
    # Joined with ';' in the order of the original attribute names: a.b, then a_b.
    assert plan.values((("b.x", 1), ("a.b", "dot"), ("a_b", "under"))) == ["1", "dot;under"]
