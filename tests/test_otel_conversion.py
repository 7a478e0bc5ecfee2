"""Snapshot -> OTel SDK MetricsData, checked on the protobuf the SDK's own encoder
makes of it (what goes on the wire), and the request size that bounds a batch."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics import __version__
from ig_metrics.exporters.otlp.common import MAX_POINTS_PER_REQUEST
from ig_metrics.model.snapshot import (
    COUNTER,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)
from tests.receivers import (
    LOG2_US_BOUNDS,
    RESOURCE,
    START_NS,
    any_value,
    attributes_of,
    tcp_like_snapshot,
)
from tests.sdk_oracle import point_count, to_metrics_data

GRPC_DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024


def encoded(snapshot: Snapshot, temporality=AggregationTemporality.CUMULATIVE):
    return encode_metrics(to_metrics_data(snapshot, temporality))


def metric_named(request, name: str) -> metrics_pb2.Metric:
    [resource_metrics] = request.resource_metrics
    [scope_metrics] = resource_metrics.scope_metrics
    return next(metric for metric in scope_metrics.metrics if metric.name == name)


def test_resource_and_scope_are_exactly_the_snapshots():
    request = encoded(tcp_like_snapshot())
    [resource_metrics] = request.resource_metrics
    assert dict(attributes_of(resource_metrics.resource.attributes)) == dict(RESOURCE)
    [scope_metrics] = resource_metrics.scope_metrics
    assert (scope_metrics.scope.name, scope_metrics.scope.version) == ("ig-metrics", __version__)
    assert [metric.name for metric in scope_metrics.metrics] == [
        "tcp.sent", "tcp.connections.opened", "tcp.connect.duration", "ig_metrics.series"]


def test_counter_is_a_monotonic_cumulative_sum_with_typed_attributes():
    snapshot = tcp_like_snapshot(seq=3)
    sent = metric_named(encoded(snapshot), "tcp.sent")
    assert (sent.unit, sent.description) == ("By", "Bytes sent over TCP.")
    assert sent.sum.is_monotonic
    assert sent.sum.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    first = sent.sum.data_points[0]
    assert first.as_int == 1_000_000 and first.WhichOneof("value") == "as_int"
    assert (first.start_time_unix_nano, first.time_unix_nano) == (START_NS, snapshot.time_ns)
    pid = next(kv for kv in first.attributes if kv.key == "process.pid")
    assert pid.value.WhichOneof("value") == "int_value"      # not a string
    assert [any_value(kv.value) for kv in sent.sum.data_points[2].attributes
            if kv.key == "network.peer.address"] == ["::ffff:10.0.0.7"]


def test_histogram_keeps_kernel_bounds_counts_and_leaves_min_max_unset():
    duration = metric_named(encoded(tcp_like_snapshot()), "tcp.connect.duration")
    [point] = duration.histogram.data_points
    assert tuple(point.explicit_bounds) == LOG2_US_BOUNDS
    assert tuple(point.bucket_counts) == (0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1)
    assert (point.count, point.sum) == (6, pytest.approx(0.007058, rel=1e-12))
    # Unknown from buckets: absent on the wire, not a made-up 0.
    assert not point.HasField("min") and not point.HasField("max")


def test_delta_temporality_labels_sums_and_histograms():
    request = encoded(tcp_like_snapshot(), AggregationTemporality.DELTA)
    delta = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    assert metric_named(request, "tcp.sent").sum.aggregation_temporality == delta
    assert metric_named(request, "tcp.connect.duration").histogram.aggregation_temporality \
        == delta
    assert metric_named(request, "ig_metrics.series").WhichOneof("data") == "gauge"


def test_bool_and_float_values_keep_their_type():
    info = MetricInfo("x.ratio", COUNTER, "1", "")
    snapshot = Snapshot(1, START_NS, "t", (), (MetricData(info, (
        Point((("flag", True),), 0.5, START_NS),)),))
    [point] = metric_named(encoded(snapshot), "x.ratio").sum.data_points
    assert point.as_double == 0.5
    assert point.attributes[0].value.WhichOneof("value") == "bool_value"


def test_metrics_without_points_are_left_out():
    info = MetricInfo("tcp.resets", COUNTER, "{reset}", "")
    snapshot = Snapshot(1, START_NS, "t", RESOURCE, (MetricData(info, ()),))
    assert point_count(to_metrics_data(snapshot)) == 0
    assert encoded(snapshot).resource_metrics[0].scope_metrics[0].metrics == []


def test_histogram_with_wrong_number_of_counts_is_refused():
    info = MetricInfo("h", HISTOGRAM, "s", "", (1.0, 2.0))
    bad = Snapshot(1, START_NS, "t", (), (MetricData(info, (
        Point((), HistogramValue((1, 2), 3.0, 3), START_NS),)),))
    with pytest.raises(ValueError, match="2 bucket counts for 2 bounds"):
        to_metrics_data(bad)


def worst_case_snapshot(points_per_metric: int) -> Snapshot:
    """Every attribute a tcp series can have, at realistic maximum lengths."""
    bounds = tuple((2 ** k - 1) / 1e9 for k in range(40))
    def attributes(index: int):
        return (("process.pid", 4_000_000 + index), ("process.command", "c" * 15),
                ("network.peer.address", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
                ("server.port", 65535), ("network.type", "ipv6"),
                ("tcp.connection.direction", "outbound"), ("container.id", "f" * 64),
                ("k8s.pod.uid", "0" * 36), ("k8s.pod.name", "p" * 63),
                ("k8s.namespace.name", "n" * 63))
    histogram = HistogramValue(tuple(2 ** 40 for _ in range(41)), 1e9, 41 * 2 ** 40)
    return Snapshot(1, START_NS, "tcp", RESOURCE, (
        MetricData(MetricInfo("tcp.sent", COUNTER, "By", "Bytes sent."), tuple(
            Point(attributes(i), 2 ** 50, START_NS) for i in range(points_per_metric))),
        MetricData(MetricInfo("tcp.connect.duration", HISTOGRAM, "s", "", bounds), tuple(
            Point(attributes(i), histogram, START_NS) for i in range(points_per_metric))),
    ))


def test_a_full_batch_of_worst_case_points_fits_a_default_grpc_message_twice():
    """MAX_POINTS_PER_REQUEST is safe: even if every point were a 40-bound
    histogram with every k8s attribute, a request stays under half of 4 MiB."""
    histograms_only = worst_case_snapshot(MAX_POINTS_PER_REQUEST)
    only = Snapshot(1, START_NS, "tcp", RESOURCE, histograms_only.metrics[1:])
    size = encoded(only).ByteSize()
    assert size < GRPC_DEFAULT_MAX_MESSAGE / 2, size
