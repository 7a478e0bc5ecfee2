"""The kernel's log2 slots as exponential buckets
(exporters/encoding/log2native.py) and the three hand-written encoders that
carry them: Prometheus' protobuf exposition, OTLP ExponentialHistogram, remote write. Each encoder's bytes are
checked against the protobuf library's own encoding of the reference message
(tests/proto_reference.py, the SDK's encoder for OTLP); the slot mapping
against a brute-force count of the integers of each slot."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import cramjam
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.exporters.encoding.log2native import (
    NativeBuckets,
    layout_of,
    native_buckets,
    native_index,
    slot_index,
    spans_and_deltas,
)
from ig_metrics.exporters.otlp.delta import DeltaTracker
from ig_metrics.exporters.otlp.requests import encode
from ig_metrics.exporters.otlp.wire import WireEncoder
from ig_metrics.exporters.prometheus.exporter import SnapshotCollector
from ig_metrics.exporters.prometheus.proto import (
    BOTH,
    CLASSIC,
    NATIVE,
    ZERO_THRESHOLD,
    ProtobufRenderer,
    wants_protobuf,
)
from ig_metrics.exporters.remotewrite.wire import (
    RemoteWriteEncoder,
    compress,
    decompress,
    without_native_histograms,
)
from ig_metrics.model.snapshot import (
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
)
from tests.proto_reference import MetricFamily, WriteRequest, read_delimited
from tests.receivers import LOG2_US_BOUNDS, START_NS, tcp_like_snapshot
from tests.sdk_oracle import encode_with_sdk

DIVISORS = {"ns": 10**9, "us": 10**6, "ms": 10**3, "By": 1}


def log2_bounds(divisor: int, slots: int) -> tuple[float, ...]:
    return tuple(((1 << slot) - 1) / divisor for slot in range(slots))


def true_bucket(value: Fraction) -> int:
    """The Prometheus index of `value` by the definition: near log2, then checked."""
    guess = math.ceil(math.log2(value))
    for index in (guess - 1, guess, guess + 1):
        if Fraction(2) ** (index - 1) < value <= Fraction(2) ** index:
            return index
    raise AssertionError(value)


def test_native_index_is_upper_inclusive_and_exact_on_powers_of_two():
    for exponent in range(-40, 40):
        power = Fraction(2) ** exponent
        assert native_index(power) == exponent
        assert native_index(power + Fraction(1, 10**30)) == exponent + 1
        assert native_index(power - Fraction(1, 10**30)) == exponent
    for value in (Fraction(3, 10**6), Fraction(1, 10**9), Fraction(2047, 1000), Fraction(5)):
        assert native_index(value) == true_bucket(value)


@pytest.mark.parametrize("unit", sorted(DIVISORS))
def test_each_slot_goes_where_most_of_its_integers_are(unit):
    """Brute force over every integer of the first slots: the bucket chosen
    holds at least half of the slot's values; a slot without a boundary
    inside is wholly in its bucket."""
    divisor = DIVISORS[unit]
    for slot in range(1, 13):
        values = range(1 << (slot - 1), 1 << slot)
        buckets = [true_bucket(Fraction(v, divisor)) for v in values]
        chosen = slot_index(slot, divisor)
        assert buckets.count(chosen) * 2 >= len(values), (unit, slot)
        assert set(buckets) <= {chosen - 1, chosen, chosen + 1}


def test_time_slots_are_a_plain_shift_and_byte_slots_are_not():
    """us, ns, ms to seconds: slot k is bucket k - 20, k - 30, k - 10, from
    the first slot on (the lower bound 2^(k-1) units is never a power of two
    seconds). Bytes: slot k = [2^(k-1), 2^k - 1] is bucket k except its first
    integer, which is a power of two and so the top of bucket k - 1."""
    for unit, shift in (("us", -20), ("ns", -30), ("ms", -10)):
        layout = layout_of(MetricInfo("m", HISTOGRAM, "s", "", log2_bounds(DIVISORS[unit], 27)))
        assert layout.contiguous
        assert layout.indexes == tuple(slot + shift for slot in range(1, 28))
    layout = layout_of(MetricInfo("m", HISTOGRAM, "By", "", log2_bounds(1, 12)))
    assert layout.indexes == (0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
    assert not layout.contiguous
    assert layout_of(MetricInfo("m", HISTOGRAM, "s", "", (0.1, 0.5, 1.0))) is None


def test_buckets_of_a_point_zero_bucket_offset_and_overflow():
    layout = layout_of(MetricInfo("m", HISTOGRAM, "s", "", LOG2_US_BOUNDS))
    counts = [0] * (len(LOG2_US_BOUNDS) + 1)
    counts[0], counts[3], counts[5], counts[-1] = 2, 1, 4, 7
    value = HistogramValue(tuple(counts), 1.0, sum(counts))
    buckets = native_buckets(layout, value)
    assert buckets == NativeBuckets(2, 3 - 20, (1, 0, 4, 0, 0, 0, 0, 0, 0, 7))
    assert spans_and_deltas(buckets) == ([(-17, 3), (6, 1)], [1, -1, 4, 3])
    empty = HistogramValue((0,) * len(counts), 0.0, 0)
    assert native_buckets(layout, empty) == NativeBuckets(0, 0, ())
    assert spans_and_deltas(NativeBuckets(0, 0, ())) == ([], [])


@pytest.mark.parametrize("accept, expected", [
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.5,"
     "text/plain;version=0.0.4;q=0.3,*/*;q=0.2", True),          # Prometheus 2.42, native on
    ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
     False),                                                        # native off
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=text;q=0.9,text/plain;q=0.5", False),
    ("text/plain;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client."
     "MetricFamily;encoding=delimited;q=0.5", False),
    ("", False), (None, False),
])
def test_content_negotiation(accept, expected):
    assert wants_protobuf(accept) is expected


def _expected_families(snapshot, histograms):
    """The reference MetricFamily messages of tcp_like_snapshot, built from
    what the text exposition of the same snapshot says."""
    families = []
    info = MetricFamily(name="target_info", help="Target metadata", type=1)
    metric = info.metric.add()
    for key, value in sorted((k.replace(".", "_"), v) for k, v in snapshot.resource):
        metric.label.add(name=key, value=value)
    metric.gauge.value = 1
    families.append(info)
    for data in snapshot.metrics:
        meta = {"tcp.sent": ("tcp_sent_bytes_total", 0), "tcp.connections.opened":
                ("tcp_connections_opened_total", 0), "tcp.connect.duration":
                ("tcp_connect_duration_seconds", 4), "ig_metrics.series":
                ("ig_metrics_series", 1)}[data.info.name]
        family = MetricFamily(name=meta[0], help=data.info.description, type=meta[1])
        for point in data.points:
            metric = family.metric.add()
            for key, value in sorted((k.replace(".", "_"), str(v)) for k, v in point.attributes):
                metric.label.add(name=key, value=value)
            value = point.value
            if meta[1] == 0:
                metric.counter.value = value
            elif meta[1] == 1:
                metric.gauge.value = value
            else:
                histogram = metric.histogram
                histogram.sample_count, histogram.sample_sum = value.count, value.sum
                if histograms != NATIVE:
                    running = 0
                    for bound, count in zip(data.info.bounds, value.counts):
                        running += count
                        histogram.bucket.add(cumulative_count=running, upper_bound=bound)
                if histograms != CLASSIC:
                    # 1, 3, 3, 4, 2047 us in slots 1, 2, 2, 3, 11 -> buckets -19, -18, -17,
                    # -9; 5000 us (past the last slot, 11) in slot 12's bucket, -8.
                    histogram.zero_threshold = ZERO_THRESHOLD
                    histogram.positive_span.add(offset=-19, length=3)
                    histogram.positive_span.add(offset=7, length=2)
                    histogram.positive_delta.extend([value.counts[1] * d for d in (1, 1, -1, 0, 0)])
        families.append(family)
    return families


@pytest.mark.parametrize("histograms", [CLASSIC, NATIVE, BOTH])
def test_protobuf_exposition_is_the_reference_encoding(histograms):
    snapshot = tcp_like_snapshot()
    collector = SnapshotCollector()
    collector.show(snapshot)
    chunks = ProtobufRenderer().render(snapshot, collector.served(snapshot), histograms)
    body = b"".join(chunks)
    expected = _expected_families(snapshot, histograms)
    assert read_delimited(body) == expected
    assert [chunk[1:] if chunk[0] < 128 else chunk[2:] for chunk in chunks] \
        == [family.SerializeToString() for family in expected]


def test_protobuf_exposition_of_zero_values():
    """A zero anywhere in a metric takes the point-by-point path (proto3 leaves a
    zero double off the wire); the bytes are the reference's either way."""
    snapshot = tcp_like_snapshot(sent=0)
    collector = SnapshotCollector()
    served = collector.served(snapshot)
    assert read_delimited(b"".join(ProtobufRenderer().render(snapshot, served, BOTH))) \
        == _expected_families(snapshot, BOTH)


def test_protobuf_exposition_of_a_later_snapshot_reuses_labels_correctly():
    renderer = ProtobufRenderer()
    collector = SnapshotCollector()
    for seq in (1, 2, 3):
        snapshot = tcp_like_snapshot(seq, scale=seq)
        served = collector.served(snapshot)
        assert read_delimited(b"".join(renderer.render(snapshot, served, BOTH))) \
            == _expected_families(snapshot, BOTH)


def _slot_histogram_snapshot(counts_by_slot: dict[int, int], seq: int = 1):
    snapshot = tcp_like_snapshot(seq)
    counts = [0] * (len(LOG2_US_BOUNDS) + 1)
    for slot, count in counts_by_slot.items():
        counts[slot] = count
    value = HistogramValue(tuple(counts), 0.25 * seq, sum(counts))
    metrics = tuple(replace(data, points=(Point(data.points[0].attributes, value, START_NS),))
                    if data.info.kind == HISTOGRAM else data for data in snapshot.metrics)
    return replace(snapshot, metrics=metrics)


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE,
                                         AggregationTemporality.DELTA])
def test_otlp_exponential_is_the_sdks_encoding_and_carries_the_slots(temporality):
    """The same bytes as the SDK's data classes through its encoder, and the
    decoded point's buckets are the slots: offset -21 for microseconds (OTLP's
    bucket j is (2^j, 2^(j+1)]: slot 1, 1 us, is j = -20 - 1)."""
    slots = {0: 3, 1: 1, 2: 5, 4: 2, 11: 1}
    snapshot = _slot_histogram_snapshot(slots)
    ours = encode(snapshot, temporality, 1000, WireEncoder(), exponential=True)
    reference = encode_with_sdk(snapshot, temporality, 1000, exponential=True)
    assert ours.requests == reference.requests
    request = ExportMetricsServiceRequest.FromString(ours.requests[0])
    metrics = {metric.name: metric for metric in
               request.resource_metrics[0].scope_metrics[0].metrics}
    exponential = metrics["tcp.connect.duration"].exponential_histogram
    assert exponential.aggregation_temporality == int(temporality)
    (point,) = exponential.data_points
    assert (point.scale, point.zero_count, point.count, point.sum) == (0, 3, 12, 0.25)
    assert point.positive.offset == 1 - 21
    assert list(point.positive.bucket_counts) == [slots.get(k, 0) for k in range(1, 12)]
    assert not point.HasField("min") and not point.HasField("max")
    # The explicit form is still the default.
    assert encode(snapshot, temporality, 1000, WireEncoder()).requests \
        == encode_with_sdk(snapshot, temporality, 1000).requests


def test_otlp_exponential_deltas_are_the_slot_differences():
    tracker = DeltaTracker()
    first = _slot_histogram_snapshot({1: 1, 3: 2})
    second = _slot_histogram_snapshot({1: 4, 3: 2, 5: 1}, seq=2)
    points = []
    for snapshot in (first, second):
        pending = tracker.prepare(snapshot)
        tracker.commit(pending)
        encoded = encode(pending.snapshot, AggregationTemporality.DELTA, 1000, WireEncoder(),
                         exponential=True)
        request = ExportMetricsServiceRequest.FromString(encoded.requests[0])
        for metric in request.resource_metrics[0].scope_metrics[0].metrics:
            if metric.name == "tcp.connect.duration":
                points.append(metric.exponential_histogram.data_points[0])
    assert [(p.positive.offset, list(p.positive.bucket_counts), p.count) for p in points] \
        == [(-20, [1, 0, 2], 3), (-20, [3, 0, 0, 0, 1], 4)]


def _expected_write_request(snapshot, histograms, external):
    request = WriteRequest()
    timestamp = snapshot.time_ns // 1_000_000

    def series(name, labels, value=None):
        entry = request.timeseries.add()
        merged = {**dict(external), **labels, "__name__": name}
        for key in sorted(merged):
            entry.labels.add(name=key, value=merged[key])
        if value is not None:
            entry.samples.add(value=value, timestamp=timestamp)
        return entry

    series("target_info", {k.replace(".", "_"): v for k, v in snapshot.resource}, 1.0)
    names = {"tcp.sent": "tcp_sent_bytes_total", "tcp.connections.opened":
             "tcp_connections_opened_total", "tcp.connect.duration":
             "tcp_connect_duration_seconds", "ig_metrics.series": "ig_metrics_series"}
    for data in snapshot.metrics:
        name = names[data.info.name]
        for point in data.points:
            labels = {k.replace(".", "_"): str(v) for k, v in point.attributes}
            value = point.value
            if not isinstance(value, HistogramValue):
                series(name, labels, float(value))
            elif histograms == NATIVE:
                entry = series(name, labels)
                histogram = entry.histograms.add(count_int=value.count, sum=value.sum,
                                                 zero_threshold=ZERO_THRESHOLD,
                                                 zero_count_int=value.counts[0],
                                                 timestamp=timestamp)
                histogram.positive_spans.add(offset=-19, length=3)
                histogram.positive_spans.add(offset=7, length=2)
                histogram.positive_deltas.extend([value.counts[1] * d for d in (1, 1, -1, 0, 0)])
            else:
                running = 0
                les = [repr(b) if b else "0.0" for b in data.info.bounds]
                for le, count in zip(les + ["+Inf"], value.counts):
                    running += count
                    series(f"{name}_bucket", {**labels, "le": le}, float(running))
                series(f"{name}_count", labels, float(value.count))
                series(f"{name}_sum", labels, value.sum)
    return request


@pytest.mark.parametrize("histograms", [CLASSIC, NATIVE])
def test_remote_write_request_is_the_reference_encoding(histograms):
    external = (("cluster", "prod-1"), ("network_type", "overridden by the series"))
    encoder = RemoteWriteEncoder(external, histograms)
    for seq, sent in ((1, 1_000_000), (2, 1_000_000), (3, 0)):    # a 0: point by point
        snapshot = tcp_like_snapshot(seq, scale=seq, sent=sent)
        (request,) = encoder.encode([snapshot])
        expected = _expected_write_request(snapshot, histograms, external)
        assert WriteRequest.FromString(request) == expected
        assert request == expected.SerializeToString()
        assert bytes(cramjam.snappy.decompress_raw(compress(request))) == request


def test_a_write_request_without_its_native_histograms():
    """What is sent again to a receiver that takes no native histograms: every
    other series as it was, in its order; a classic request is left whole."""
    snapshot = tcp_like_snapshot(2, scale=2)
    (native,) = RemoteWriteEncoder((), NATIVE).encode([snapshot])
    rest, dropped = without_native_histograms(decompress(compress(native)))
    whole = WriteRequest.FromString(native)
    expected = WriteRequest()
    expected.timeseries.extend(series for series in whole.timeseries if not series.histograms)
    assert dropped == 1 and rest == expected.SerializeToString()
    (classic,) = RemoteWriteEncoder((), CLASSIC).encode([snapshot])
    assert without_native_histograms(classic) == (classic, 0)
    with pytest.raises(ValueError, match="not a WriteRequest"):
        without_native_histograms(native[:-3])


def test_remote_write_of_a_metric_without_log2_bounds_stays_classic():
    snapshot = tcp_like_snapshot()
    odd = MetricInfo("odd.latency", HISTOGRAM, "s", "Not log2.", (0.1, 0.5))
    data = MetricData(odd, (Point((), HistogramValue((1, 2, 3), 2.0, 6), START_NS),))
    snapshot = replace(snapshot, metrics=(data,), resource=())
    (request,) = RemoteWriteEncoder((), NATIVE).encode([snapshot])
    names = [next(label.value for label in series.labels if label.name == "__name__")
             for series in WriteRequest.FromString(request).timeseries]
    assert names == ["odd_latency_seconds_bucket"] * 3 + ["odd_latency_seconds_count",
                                                           "odd_latency_seconds_sum"]


def test_remote_write_leaves_out_a_second_metric_of_the_same_prometheus_name(caplog):
    snapshot = tcp_like_snapshot()
    sent = snapshot.metric("tcp.sent")
    twin = MetricData(replace(sent.info, name="tcp_sent"), sent.points)
    (request,) = RemoteWriteEncoder().encode([replace(snapshot, metrics=(sent, twin))])
    names = [next(label.value for label in series.labels if label.name == "__name__")
             for series in WriteRequest.FromString(request).timeseries]
    assert names == ["target_info"] + ["tcp_sent_bytes_total"] * len(sent.points)
    assert "metric tcp_sent is not sent" in caplog.text
