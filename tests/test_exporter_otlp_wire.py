"""The OTLP requests written straight to protobuf (exporters/otlp/wire.py) are
what the SDK's data classes and encoder make of the same snapshots: parsed by
opentelemetry-proto's own ExportMetricsServiceRequest they equal the SDK's
request, and their bytes are the SDK's bytes. Snapshots as exporters see
them: histograms, overflow series, delta intervals, resource attributes, int,
float and bool values, empty attributes, requests split by points."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import pytest
from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import (
    EncodingException,
)
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.config.model import LimitSettings
from ig_metrics.exporters.delivery.limits import SeriesLimiter
from ig_metrics.exporters.encoding.chunks import split
from ig_metrics.exporters.otlp.delta import DeltaTracker
from ig_metrics.exporters.otlp.requests import encode
from ig_metrics.exporters.otlp.wire import WireEncoder
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)
from tests.receivers import RESOURCE, START_NS, tcp_like_snapshot
from tests.sdk_oracle import encode_with_sdk, to_metrics_data

CUMULATIVE, DELTA = AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA
BOUNDS = (0.001, 0.01, 0.1)


def assert_same_as_sdk(snapshot: Snapshot, temporality=CUMULATIVE, max_points: int = 1000,
                       encoder: WireEncoder | None = None) -> list[bytes]:
    """Each request parses to the SDK's request for the same chunk, byte for byte."""
    encoded = encode(snapshot, temporality, max_points, encoder or WireEncoder())
    chunks = split(snapshot, max_points)
    assert len(encoded.requests) == len(chunks)
    for request, chunk in zip(encoded.requests, chunks):
        expected = encode_metrics(to_metrics_data(chunk, temporality))
        assert ExportMetricsServiceRequest.FromString(request) == expected
        assert request == expected.SerializeToString()
    assert encoded == encode_with_sdk(snapshot, temporality, max_points)
    return list(encoded.requests)


def peer(index: int, **more) -> tuple:
    return (("process.pid", 1000 + index), ("process.command", f"worker-{index}"),
            ("network.peer.address", f"10.0.{index // 256}.{index % 256}"),
            ("server.port", 443), ("network.type", "ipv4"), *more.items())


def many_series_snapshot(series: int, seq: int = 1, attributes: list | None = None,
                         ) -> Snapshot:
    """`series` series of a counter, a gauge and (one in ten) a histogram."""
    attributes = attributes or [peer(index) for index in range(series)]
    sent = MetricInfo("tcp.sent", COUNTER, "By", "Bytes sent.")
    rtt = MetricInfo("tcp.rtt", GAUGE, "s", "")
    duration = MetricInfo("tcp.connect.duration", HISTOGRAM, "s", "Time.", BOUNDS)
    return Snapshot(seq, START_NS + seq * 10**10, "tcp", RESOURCE, (
        MetricData(sent, tuple(Point(a, 1000 * seq + i, START_NS)
                               for i, a in enumerate(attributes))),
        MetricData(rtt, tuple(Point(a, 0.001 * i, START_NS) for i, a in enumerate(attributes))),
        MetricData(duration, tuple(Point(a, HistogramValue((i, 1, 0, seq), 0.5 * i, i + 1 + seq),
                                         START_NS) for i, a in enumerate(attributes[::10]))),
    ))


@pytest.mark.parametrize("temporality", [CUMULATIVE, DELTA])
def test_tcp_snapshot_with_histogram_gauge_and_resource(temporality):
    assert_same_as_sdk(tcp_like_snapshot(seq=3), temporality)


def points_per_request(requests: list[bytes]) -> list[int]:
    counts = []
    for request in requests:
        [resource_metrics] = ExportMetricsServiceRequest.FromString(request).resource_metrics
        [scope_metrics] = resource_metrics.scope_metrics
        counts.append(sum(len(getattr(metric, metric.WhichOneof("data")).data_points)
                          for metric in scope_metrics.metrics))
    return counts


def test_requests_split_by_points_are_each_the_sdks():
    snapshot = many_series_snapshot(95)          # 95 + 95 + 10 points
    requests = assert_same_as_sdk(snapshot, max_points=40)
    assert points_per_request(requests) == [40, 40, 40, 40, 40]
    # A metric that straddles two requests is in both, with its name and kind.
    second = ExportMetricsServiceRequest.FromString(requests[2])
    assert [metric.name for metric in second.resource_metrics[0].scope_metrics[0].metrics] \
        == ["tcp.sent", "tcp.rtt"]


@pytest.mark.parametrize("temporality", [CUMULATIVE, DELTA])
def test_a_snapshot_of_many_series_again_and_again(temporality):
    """The cached attributes of one tick serve the next, values and times new."""
    encoder = WireEncoder()
    attributes = [peer(index) for index in range(300)]
    for seq in range(1, 4):
        assert_same_as_sdk(many_series_snapshot(300, seq, attributes), temporality,
                           max_points=250, encoder=encoder)


def test_overflow_series_from_the_cardinality_limit():
    limiter = SeriesLimiter(LimitSettings(max_series=4))
    limited, folded, _ = limiter.apply(many_series_snapshot(30))
    assert folded and any(point.attributes == (("otel.metric.overflow", True),)
                          for point in limited.metrics[0].points)
    assert_same_as_sdk(limited)


def test_delta_intervals_with_restarts_and_unchanged_series():
    tracker = DeltaTracker()
    attributes = [peer(index) for index in range(40)]
    encoder = WireEncoder()
    for seq in (1, 2, 3):
        snapshot = many_series_snapshot(40, seq, attributes)
        if seq == 3:      # some series restarted: a new start time, a smaller value
            sent = snapshot.metrics[0]
            restarted = tuple(point._replace(value=5, start_time_ns=START_NS + 7)
                              if index % 3 == 0 else point
                              for index, point in enumerate(sent.points))
            snapshot = replace(snapshot, metrics=(MetricData(sent.info, restarted),
                                                  *snapshot.metrics[1:]))
        pending = tracker.prepare(snapshot)
        tracker.commit(pending)
        assert_same_as_sdk(pending.snapshot, DELTA, encoder=encoder)


def test_int_and_float_values_at_their_extremes():
    info = MetricInfo("x.values", COUNTER, "1", "")
    gauge = MetricInfo("x.level", GAUGE, "", "")
    values = [0, 1, -1, 2**63 - 1, -2**63, 0.0, -0.0, 0.5, 1e300, float("inf"), float("-inf")]
    snapshot = Snapshot(1, START_NS, "t", RESOURCE, (
        MetricData(info, tuple(Point((("index", index),), value, START_NS)
                               for index, value in enumerate(values))),
        MetricData(gauge, tuple(Point((("index", index),), value, START_NS)
                                for index, value in enumerate(values))),
    ))
    requests = assert_same_as_sdk(snapshot)
    [metric, _] = ExportMetricsServiceRequest.FromString(requests[0]) \
        .resource_metrics[0].scope_metrics[0].metrics
    assert [point.WhichOneof("value") for point in metric.sum.data_points] \
        == ["as_int"] * 5 + ["as_double"] * 6


@pytest.mark.parametrize("value", [True, 2**64, HistogramValue((1,), 1.0, 1)])
def test_a_value_protobuf_refuses_fails_the_encoding_as_the_sdks_does(value):
    info = MetricInfo("x.odd", COUNTER, "", "")
    snapshot = Snapshot(1, START_NS, "t", (), (MetricData(info, (
        Point((), value, START_NS),)),))
    with pytest.raises((TypeError, ValueError)):
        encode(snapshot, CUMULATIVE, 1000, WireEncoder())
    with pytest.raises((EncodingException, TypeError)):     # the SDK's (private) exception
        encode_with_sdk(snapshot, CUMULATIVE, 1000)


def test_nan_is_sent_as_nan():
    info = MetricInfo("x.nan", GAUGE, "", "")
    snapshot = Snapshot(1, START_NS, "t", (), (MetricData(info, (
        Point((), float("nan"), START_NS),)),))
    request = encode(snapshot, CUMULATIVE, 1000, WireEncoder()).requests[0]
    assert request == encode_with_sdk(snapshot, CUMULATIVE, 1000).requests[0]


def test_empty_attributes_empty_resource_empty_strings_and_zero_times():
    counter = MetricInfo("x.count", COUNTER, "", "")          # no unit, no description
    histogram = MetricInfo("x.spread", HISTOGRAM, "", "", ())  # no bounds: one bucket
    snapshot = Snapshot(1, START_NS, "t", (), (
        MetricData(counter, (Point((), 3, START_NS), Point((), 4, 0),
                             Point((("empty", ""), ("", "no key")), 5, START_NS))),
        MetricData(histogram, (Point((), HistogramValue((0,), 0.0, 0), START_NS),
                               Point((("a", 1),), HistogramValue((2,), 1.5, 2), 0))),
    ))
    assert_same_as_sdk(snapshot)
    assert_same_as_sdk(replace(snapshot, time_ns=0))


def test_attribute_values_of_every_kind_and_a_repeated_key():
    attributes = (("s", "text ☃ \"quoted\"\n"), ("i", -5), ("big", 2**62), ("b", False),
                  ("f", 2.5), ("s", "last wins"), ("long", "x" * 300))
    info = MetricInfo("x.count", COUNTER, "", "")
    snapshot = Snapshot(1, START_NS, "t", RESOURCE + (("service.name", "again"),), (
        MetricData(info, (Point(attributes, 1, START_NS),)),))
    assert_same_as_sdk(snapshot)


def test_an_attribute_the_sdk_cannot_encode_is_left_out_and_logged(caplog):
    info = MetricInfo("x.count", COUNTER, "", "")
    snapshot = Snapshot(1, START_NS, "t", (), (MetricData(info, (
        Point((("too.big", 2**64), ("kept", 1)), 1, START_NS),)),))
    with caplog.at_level(logging.ERROR):
        assert_same_as_sdk(snapshot)
    assert "Failed to encode key too.big" in caplog.text


def test_a_value_out_of_range_names_the_metric():
    info = MetricInfo("x.huge", COUNTER, "", "")
    snapshot = Snapshot(1, START_NS, "t", (), (MetricData(info, (
        Point((), -2**63 - 1, START_NS),)),))
    with pytest.raises(ValueError, match="metric x.huge"):
        encode(snapshot, CUMULATIVE, 1000, WireEncoder())


def test_a_histogram_with_the_wrong_number_of_counts_is_refused():
    info = MetricInfo("h", HISTOGRAM, "s", "", (1.0, 2.0))
    bad = Snapshot(1, START_NS, "t", (), (MetricData(info, (
        Point((), HistogramValue((1, 2), 3.0, 3), START_NS),)),))
    with pytest.raises(ValueError, match="2 bucket counts for 2 bounds"):
        encode(bad, CUMULATIVE, 1000, WireEncoder())


def test_the_cache_keeps_only_the_series_of_the_latest_encoding():
    encoder = WireEncoder()
    encode(many_series_snapshot(100), CUMULATIVE, 1000, encoder)
    assert (len(encoder._numbers), len(encoder._histograms)) == (100, 10)
    encode(many_series_snapshot(30), CUMULATIVE, 1000, encoder)
    assert (len(encoder._numbers), len(encoder._histograms)) == (30, 3)


def counting(cache) -> list:
    """Records each series whose attributes `cache` encodes."""
    made, make = [], cache.make

    def counted(attributes):
        made.append(attributes)
        return make(attributes)

    cache.make = counted
    return made


def test_each_series_attributes_are_encoded_once_while_it_lives():
    encoder = WireEncoder()
    numbers, histograms = counting(encoder._numbers), counting(encoder._histograms)
    attributes = [peer(index) for index in range(100)]
    for seq in range(1, 5):
        snapshot = many_series_snapshot(100, seq, attributes)
        for metrics in (snapshot.metrics[0::2], snapshot.metrics[1:]):    # sums, gauges
            assert_same_as_sdk(replace(snapshot, metrics=metrics), encoder=encoder)
    assert (len(numbers), len(histograms)) == (100, 10)


def test_equal_attributes_in_new_tuples_each_tick_are_still_encoded_once():
    """A series whose attributes are built anew at every tick (equal, not the
    same object) is found by value: right bytes, and no growth of the cache."""
    encoder = WireEncoder()
    made = counting(encoder._numbers)
    for seq in range(1, 4):
        fresh = [tuple(pair for pair in peer(index)) + (("direction", "out"),)
                 for index in range(50)]
        assert_same_as_sdk(many_series_snapshot(50, seq, fresh), encoder=encoder)
        assert len(encoder._numbers) == 50
    assert len(made) == 50


def test_attributes_of_vanished_series_never_stand_for_new_ones():
    """Tuples freed after their series vanished give their memory (and ids) to
    new ones: every encoding stays the SDK's."""
    encoder = WireEncoder()
    for seq in range(1, 30):
        attributes = [peer(seq * 1000 + index) for index in range(20)]
        assert_same_as_sdk(many_series_snapshot(20, seq, attributes), encoder=encoder)
        del attributes
        assert len(encoder._numbers) == 20


def test_concurrent_encodings_with_one_encoder_are_each_right():
    encoder = WireEncoder()
    snapshots = [many_series_snapshot(200, seq) for seq in range(1, 7)]
    expected = [encode_with_sdk(snapshot, CUMULATIVE, 100) for snapshot in snapshots]
    results: dict[int, object] = {}

    def run(index: int) -> None:
        results[index] = encode(snapshots[index], CUMULATIVE, 100, encoder)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(snapshots))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[index] for index in range(len(snapshots))] == expected


def test_no_request_grows_past_what_a_grpc_server_accepts(monkeypatch) -> None:
    """With a cap on points far too high for long attributes, requests are
    split further by size, and together still carry every point once."""
    import ig_metrics.exporters.otlp.requests as encoding

    monkeypatch.setattr(encoding, "MAX_REQUEST_BYTES", 20_000)
    snapshot = many_series_snapshot(300)
    encoded = encode(snapshot, CUMULATIVE, 100_000, WireEncoder())
    assert len(encoded.requests) > 1
    assert max(map(len, encoded.requests)) <= 20_000
    assert encoded.total_points == snapshot.point_count == sum(
        points_per_request(list(encoded.requests)))
