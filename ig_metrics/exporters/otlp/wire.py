"""Snapshots written straight to the protobuf wire format of an OTLP
ExportMetricsServiceRequest: the bytes the SDK's data classes and encoder make
of them (tests/sdk_oracle.py, `encode_metrics`), with each series' attributes
encoded once and kept while it lives. Field numbers: opentelemetry-proto's."""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Iterable, Iterator
from itertools import chain, repeat
from operator import attrgetter

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.resources import Resource

from ig_metrics import __version__
from ig_metrics.exporters.encoding.log2native import Layout, layout_of, native_buckets
from ig_metrics.exporters.encoding.protobuf import (
    LENGTH_DELIMITED,
    field,
    length,
    string_field,
    varint,
    varint_field,
    zigzag,
)
from ig_metrics.exporters.encoding.seriescache import PAYLOAD, SeriesCache
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    Attributes,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)

SCOPE_NAME = "ig-metrics"           # the instrumentation scope of every metric we send

log = logging.getLogger("ig_metrics.exporters")

# Tags (field number << 3 | wire type): 0 varint, 1 fixed64, 2 length-delimited.
_NUMBER_ATTRIBUTES = 7 << 3 | LENGTH_DELIMITED         # NumberDataPoint.attributes
_HISTOGRAM_ATTRIBUTES = 9 << 3 | LENGTH_DELIMITED      # HistogramDataPoint.attributes
_RESOURCE_ATTRIBUTES = 1 << 3 | LENGTH_DELIMITED       # Resource.attributes
_EXPONENTIAL_ATTRIBUTES = 1 << 3 | LENGTH_DELIMITED    # ExponentialHistogramDataPoint's
_GAUGE, _SUM, _HISTOGRAM, _EXPONENTIAL = 5, 7, 9, 10   # Metric.data, by kind
_DATA_FIELD = {GAUGE: _GAUGE, COUNTER: _SUM, HISTOGRAM: _HISTOGRAM}
# A NumberDataPoint of a sum: start_time_unix_nano (2), time_unix_nano (3),
# then as_int (6, sfixed64) or as_double (4, double), three tagged 8-byte
# fields, then its attributes. The cached head ends with the first tag; the
# time and the value's tag are the same for every point of a request.
_SUM_INT = struct.Struct("<Q10sq")        # start, time field + as_int tag, value
_SUM_DOUBLE = struct.Struct("<Q10sd")
_SUM_POINT_SIZE = 1 + _SUM_INT.size       # the start's tag ends the cached head
_START_TAG, _TIME_TAG, _DOUBLE_TAG, _INT_TAG = 0x11, 0x19, 0x21, 0x31
_COUNT_TAG, _SUM_TAG = 0x21, 0x29                     # HistogramDataPoint count, sum
_ZERO_COUNT_TAG = 0x39                 # ExponentialHistogramDataPoint.zero_count (fixed64)
_TAGGED_FIXED64 = struct.Struct("<BQ")
_TAGGED_INT = struct.Struct("<Bq")
_TAGGED_DOUBLE = struct.Struct("<Bd")


def _any_value(value: object) -> AnyValue:
    """The AnyValue the SDK's `_encode_value` makes of an attribute value."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    raise TypeError(f"invalid type {type(value)} of value {value}")


def key_values(attributes: Iterable[tuple[str, object]], tag: int) -> bytes:
    """Attributes as repeated KeyValue fields under `tag`. A value the SDK
    cannot encode is left out with a logged error, as the SDK's encoder does
    (it would otherwise fail the whole export for one attribute)."""
    fields = []
    for key, value in attributes:
        try:
            body = KeyValue(key=key, value=_any_value(value)).SerializeToString()
        except (TypeError, ValueError) as error:        # out of int64, not a scalar
            log.error("Failed to encode key %s: %s", key, error)
            continue
        fields.append(bytes((tag,)) + length(len(body)) + body)
    return b"".join(fields)


def resource_field(resource: Attributes) -> bytes:
    """ResourceMetrics.resource: the attributes as the SDK's Resource keeps them
    (later duplicates win; invalid keys or values dropped)."""
    cleaned = Resource(dict(resource)).attributes
    return field(1, key_values(cleaned.items(), _RESOURCE_ATTRIBUTES))


SCOPE_FIELD = field(1, InstrumentationScope(name=SCOPE_NAME, version=__version__)
                    .SerializeToString())


def _number_attributes(attributes: Attributes) -> tuple[bytes, bytes]:
    """A series' NumberDataPoint.attributes fields, and the head of a sum point
    with them: its tag, its length and the start time's tag (see _sum_points).
    dict(): a repeated key keeps its last value, as the SDK's dict(...) does."""
    encoded = key_values(dict(attributes).items(), _NUMBER_ATTRIBUTES)
    return encoded, b"\x0a" + length(_SUM_POINT_SIZE + len(encoded)) + bytes((_START_TAG,))


def _histogram_attributes(attributes: Attributes) -> tuple[bytes]:
    return (key_values(dict(attributes).items(), _HISTOGRAM_ATTRIBUTES),)


def _exponential_attributes(attributes: Attributes) -> tuple[bytes]:
    return (key_values(dict(attributes).items(), _EXPONENTIAL_ATTRIBUTES),)


# Columns of a cache entry (see SeriesCache): what _number_attributes and
# _histogram_attributes return.
_KEY_VALUES, _SUM_POINT_HEAD = PAYLOAD, PAYLOAD + 1
_START_TIME, _VALUE = attrgetter("start_time_ns"), attrgetter("value")


class WireEncoder:
    """Encodes requests with cached attributes. One encoding at a time: the
    caches are pruned after each, which a concurrent one must not see."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = SeriesCache(_number_attributes)
        self._histograms = SeriesCache(_histogram_attributes)
        self._exponentials = SeriesCache(_exponential_attributes)
        self._resource: tuple[Attributes, bytes] | None = None

    def encode(self, chunks: Iterable[Snapshot], temporality: AggregationTemporality,
               exponential: bool = False) -> list[bytes]:
        """One request per chunk, in order; entries of series not in any chunk
        are dropped afterwards. `exponential`: histograms whose bounds are the
        kernel's log2 slots go as ExponentialHistograms of scale 0."""
        with self._lock:
            self._numbers.begin()
            self._histograms.begin()
            self._exponentials.begin()
            # A metric's points in a chunk are known to the caches by the metric
            # and their place among its pieces: the same from tick to tick
            # while the metric keeps its number of series.
            pieces: dict[str, int] = {}
            try:
                return [self._request(chunk, int(temporality), pieces, exponential)
                        for chunk in chunks]
            finally:
                self._numbers.prune()
                self._histograms.prune()
                self._exponentials.prune()

    def _request(self, snapshot: Snapshot, temporality: int, pieces: dict[str, int],
                 exponential: bool) -> bytes:
        resource = self._resource
        if resource is None or resource[0] != snapshot.resource:
            resource = self._resource = (snapshot.resource, resource_field(snapshot.resource))
        parts: list[bytes] = []
        for data in snapshot.metrics:
            if data.points:
                piece = pieces[data.info.name] = pieces.get(data.info.name, -1) + 1
                self._metric(data, (data.info.name, piece), snapshot.time_ns, temporality,
                             parts, layout_of(data.info) if exponential else None)
        metrics_size = sum(map(len, parts))
        scope_metrics = b"\x12" + length(len(SCOPE_FIELD) + metrics_size)
        resource_metrics_size = len(resource[1]) + len(scope_metrics) + len(SCOPE_FIELD) \
            + metrics_size
        return b"".join([b"\x0a", length(resource_metrics_size), resource[1], scope_metrics,
                         SCOPE_FIELD, *parts])

    def _metric(self, data: MetricData, key: tuple[str, int], time_ns: int, temporality: int,
                parts: list[bytes], layout: Layout | None = None) -> None:
        """Appends ScopeMetrics.metrics field of `data` to `parts`, its points
        joined once and not copied again until the request is. A histogram
        with a `layout` goes as an ExponentialHistogram."""
        info = data.info
        number = _DATA_FIELD.get(info.kind)
        if number is None:
            raise ValueError(f"metric {info.name}: unknown kind {info.kind!r}")
        try:
            if info.kind == HISTOGRAM and layout is not None:
                number = _EXPONENTIAL
                points = self._exponential_points(data, key, time_ns, layout)
                # ExponentialHistogram.aggregation_temporality
                trailer = varint_field(2, temporality)
            elif info.kind == HISTOGRAM:
                points = self._histogram_points(data, key, time_ns)
                trailer = varint_field(2, temporality)      # Histogram.aggregation_temporality
            elif info.kind == COUNTER:
                points = self._sum_points(data, key, time_ns)
                trailer = varint_field(2, temporality) + b"\x18\x01"     # is_monotonic = true
            else:
                points = self._gauge_points(data, key, time_ns)
                trailer = b""
        except struct.error as error:       # as the SDK's encoder refuses it
            raise ValueError(f"metric {info.name}: a value out of range: {error}") from error
        body_size = len(points) + len(trailer)
        header = _metric_header(info) + bytes((number << 3 | LENGTH_DELIMITED,)) \
            + length(body_size)
        parts += (b"\x12", length(len(header) + body_size), header, points, trailer)

    def _sum_points(self, data: MetricData, key: tuple[str, int], time_ns: int) -> bytes:
        """Sum.data_points, the bulk of an export: made by C code alone (map,
        zip, struct) when the values are all ints or all floats and no time is
        zero, as counters' are."""
        points = data.points
        attributes = self._numbers.column(key, points, _KEY_VALUES)
        starts = list(map(_START_TIME, points))
        values = list(map(_VALUE, points))
        kinds = set(map(type, values))
        if time_ns and 0 not in starts and kinds in ({int}, {float}):
            time_field = _TAGGED_FIXED64.pack(_TIME_TAG, time_ns)
            if kinds == {int}:
                packed = map(_SUM_INT.pack, starts, repeat(time_field + bytes((_INT_TAG,))),
                             values)
            else:
                packed = map(_SUM_DOUBLE.pack, starts,
                             repeat(time_field + bytes((_DOUBLE_TAG,))), values)
            heads = self._numbers.column(key, points, _SUM_POINT_HEAD)
            return b"".join(chain.from_iterable(zip(heads, packed, attributes)))
        return b"".join(chain.from_iterable(map(_number_point, attributes, starts,
                                                repeat(time_ns), values)))

    def _gauge_points(self, data: MetricData, key: tuple[str, int], time_ns: int) -> bytes:
        """Gauge.data_points: no start time (the SDK's encoder leaves it out)."""
        points = data.points
        attributes = self._numbers.column(key, points, _KEY_VALUES)
        return b"".join(chain.from_iterable(map(_number_point, attributes, repeat(0),
                                                repeat(time_ns), map(_VALUE, points))))

    def _histogram_points(self, data: MetricData, key: tuple[str, int], time_ns: int) -> bytes:
        info = data.info
        bounds = info.bounds
        buckets = len(bounds) + 1
        # bucket_counts (6) and explicit_bounds (7) are packed repeated fields.
        counts_header = b"\x32" + length(8 * buckets)
        pack_counts = struct.Struct(f"<{buckets}Q").pack
        bounds_field = (b"\x3a" + length(8 * len(bounds))
                        + struct.pack(f"<{len(bounds)}d", *bounds)) if bounds else b""
        parts: list[bytes] = []
        for point, value, attributes in _histogram_values(
                info, data.points, self._histograms.column(key, data.points, _KEY_VALUES)):
            if len(value.counts) != buckets:
                raise ValueError(f"metric {info.name}: {len(value.counts)} bucket counts for "
                                 f"{len(bounds)} bounds (expected {buckets})")
            fixed = (_fixed64(_START_TAG, point.start_time_ns) + _fixed64(_TIME_TAG, time_ns)
                     + _fixed64(_COUNT_TAG, value.count)
                     # sum is `optional double`: on the wire even when 0.
                     + _TAGGED_DOUBLE.pack(_SUM_TAG, value.sum)
                     + counts_header + pack_counts(*value.counts)
                     + bounds_field)
            parts += (b"\x0a", length(len(fixed) + len(attributes)), fixed, attributes)
        return b"".join(parts)

    def _exponential_points(self, data: MetricData, key: tuple[str, int], time_ns: int,
                            layout: Layout) -> bytes:
        """ExponentialHistogram.data_points, scale 0: attributes (1), start (2),
        time (3), count (4), sum (5), zero_count (7), positive buckets (8: offset
        and packed counts). Indexes are OTLP's: bucket j holds (2^j, 2^(j+1)],
        one below Prometheus' numbering of the same bucket."""
        info = data.info
        parts: list[bytes] = []
        for point, value, attributes in _histogram_values(
                info, data.points, self._exponentials.column(key, data.points, _KEY_VALUES)):
            buckets = native_buckets(layout, value)
            fixed = [attributes, _fixed64(_START_TAG, point.start_time_ns),
                     _fixed64(_TIME_TAG, time_ns), _fixed64(_COUNT_TAG, value.count),
                     _TAGGED_DOUBLE.pack(_SUM_TAG, value.sum),
                     _fixed64(_ZERO_COUNT_TAG, buckets.zero_count)]
            if buckets.counts:
                packed = b"".join(map(varint, buckets.counts))
                offset = buckets.offset - 1
                body = (b"\x08" + zigzag(offset) if offset else b"") \
                    + b"\x12" + length(len(packed)) + packed
                fixed.append(b"\x42" + length(len(body)) + body)
            body = b"".join(fixed)
            parts += (b"\x0a", length(len(body)), body)
        return b"".join(parts)


def _histogram_values(info: MetricInfo, points: Iterable[Point], attributes: Iterable[bytes],
                      ) -> Iterator[tuple[Point, HistogramValue, bytes]]:
    """(point, its HistogramValue, its encoded attributes) of each point."""
    for point, encoded in zip(points, attributes):
        if not isinstance(point.value, HistogramValue):
            raise TypeError(f"metric {info.name}: a histogram point without a HistogramValue")
        yield point, point.value, encoded


def _number_point(attributes: bytes, start: int, time_ns: int,
                  value: int | float | HistogramValue) -> tuple[bytes, ...]:
    """NumberDataPoint field of any kind: zero times are left off the wire."""
    if isinstance(value, HistogramValue):
        raise TypeError("a histogram value in a counter or gauge")
    if isinstance(value, bool):         # protobuf refuses it for as_int, as here
        raise TypeError("a bool value in a counter or gauge")
    if isinstance(value, int):
        tagged = _TAGGED_INT.pack(_INT_TAG, value)
    else:
        tagged = _TAGGED_DOUBLE.pack(_DOUBLE_TAG, value)
    fixed = _fixed64(_START_TAG, start) + _fixed64(_TIME_TAG, time_ns) + tagged
    return b"\x0a", length(len(fixed) + len(attributes)), fixed, attributes


def _fixed64(tag: int, value: int) -> bytes:
    # proto3 leaves a zero fixed64 off the wire.
    return _TAGGED_FIXED64.pack(tag, value) if value else b""


def _metric_header(info: MetricInfo) -> bytes:
    """Metric.name (1), description (2), unit (3)."""
    return (string_field(1, info.name) + string_field(2, info.description)
            + string_field(3, info.unit))
