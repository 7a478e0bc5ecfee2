"""A snapshot in Prometheus' protobuf exposition format: length-delimited
io.prometheus.client.MetricFamily messages (what Prometheus asks for with
--enable-feature=native-histograms). Counters, gauges and histograms, these
classic, native (schema 0, from the kernel's log2 slots: encoding/log2native.py)
or both in one message. Written by hand like otlp/wire.py, each series' labels
encoded once while it lives; field numbers are client_model's metrics.proto."""

from __future__ import annotations

from itertools import accumulate, chain
from operator import attrgetter

from prometheus_client.metrics_core import Metric

from ig_metrics.exporters.encoding.log2native import layout_of, native_buckets, spans_and_deltas
from ig_metrics.exporters.encoding.protobuf import (
    DOUBLE,
    delimited,
    double_field,
    field,
    length,
    string_field,
    varint_field,
    zigzag,
)
from ig_metrics.exporters.encoding.seriescache import PAYLOAD, SeriesCache
from ig_metrics.exporters.prometheus import naming
from ig_metrics.exporters.prometheus.families import check_buckets
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    Attributes,
    HistogramValue,
    MetricData,
    MetricInfo,
    Snapshot,
)

CONTENT_TYPE = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                "encoding=delimited")
CLASSIC, NATIVE, BOTH = "classic", "native", "both"
# MetricFamily.type
_TYPE_COUNTER, _TYPE_GAUGE, _TYPE_HISTOGRAM = 0, 1, 4
_TYPE_OF = {COUNTER: _TYPE_COUNTER, GAUGE: _TYPE_GAUGE, HISTOGRAM: _TYPE_HISTOGRAM}
_VALUE = attrgetter("value")
_PLAIN_NUMBERS = {int, float}             # bool, a subclass of int, is refused below
# The zero bucket's width: the smallest client_golang uses. No kernel value
# lies in (0, 2^-128] exported units, so it holds exactly the zeros (slot 0);
# a width above 0 is also what tells Prometheus 2.42 that a histogram with no
# observation yet is native (it treats zero width and no buckets as classic).
ZERO_THRESHOLD = 2.0 ** -128


def label_pairs(names: list[str], values: list[str], tag: int = 1) -> bytes:
    """Repeated LabelPair (name 1, value 2) fields under `tag`, sorted by name.
    remote write's Label has the same two fields."""
    out = []
    for name, value in sorted(zip(names, values)):
        body = field(1, name.encode()) + string_field(2, value)
        out.append(bytes((tag << 3 | 2,)) + length(len(body)) + body)
    return b"".join(out)


def _series_labels(attributes: Attributes) -> tuple[bytes, bytes, bytes]:
    """A series' label fields, and the head of its Metric field as a counter and
    as a gauge with a non-zero value: tag, length, labels, then the value's
    message tag, length and double tag; the 8 bytes of the value end it."""
    plan = naming.label_plan(tuple(key for key, _ in attributes))
    labels = label_pairs(list(plan.names), plan.values(attributes))
    head = b"\x22" + length(len(labels) + 11) + labels
    return labels, head + b"\x1a\x09\x09", head + b"\x12\x09\x09"


def native_fields(info: MetricInfo, value: HistogramValue) -> bytes | None:
    """The native part of a client_model Histogram (schema 0 is the default and
    left off); None when the metric's bounds are not log2 slots."""
    layout = layout_of(info)
    if layout is None:
        return None
    buckets = native_buckets(layout, value)
    spans, deltas = spans_and_deltas(buckets)
    out = [double_field(6, ZERO_THRESHOLD), varint_field(7, buckets.zero_count)]
    for offset, size in spans:
        out.append(field(12, span(offset, size)))
    if deltas:
        packed = b"".join(map(zigzag, deltas))
        out.append(field(13, packed))
    return b"".join(out)


def span(offset: int, size: int) -> bytes:
    """A BucketSpan (offset 1, sint32; length 2), in client_model and remote write."""
    return (b"\x08" + zigzag(offset) if offset else b"") + varint_field(2, size)


def _classic_buckets(info: MetricInfo, value: HistogramValue) -> bytes:
    """Bucket fields (cumulative_count 1, upper_bound 2), +Inf left to the
    parser as client_golang does."""
    return b"".join(field(3, varint_field(1, running) + double_field(2, bound))
                    for running, bound in zip(accumulate(value.counts), info.bounds))


class ProtobufRenderer:
    """Writes snapshots as delimited MetricFamily messages, keeping each
    series' label fields between them. One rendering at a time."""

    def __init__(self) -> None:
        self._labels = SeriesCache(_series_labels)

    def render(self, snapshot: Snapshot, served: list[tuple[MetricData, Metric]],
               histograms: str) -> list[bytes]:
        """target_info, then each served metric (with its prometheus_client
        family, for the help text) as one MetricFamily."""
        chunks: list[bytes] = []
        if snapshot.resource:
            labels = [(naming.label_name(key), naming.label_value(value))
                      for key, value in snapshot.resource]
            metric = label_pairs([name for name, _ in labels], [value for _, value in labels]) \
                + field(2, double_field(1, 1.0))
            chunks.append(delimited(field(1, b"target_info") + field(2, b"Target metadata")
                                    + varint_field(3, _TYPE_GAUGE) + field(4, metric)))
        self._labels.begin()
        try:
            for data, family in served:
                chunks.append(self._family(data, family.documentation, histograms))
        finally:
            self._labels.prune()
        return chunks

    def _family(self, data: MetricData, help_text: str, histograms: str) -> bytes:
        info = data.info
        kind = _TYPE_OF.get(info.kind)
        if kind is None:
            raise ValueError(f"metric {info.name}: unknown kind {info.kind!r}")
        name = naming.prometheus_metric_name(info.name, info.unit, info.kind)
        header = field(1, name.encode()) + string_field(2, help_text) + varint_field(3, kind)
        labels = self._labels.column(info.name, data.points, PAYLOAD)
        if info.kind != HISTOGRAM:
            values = list(map(_VALUE, data.points))
            if set(map(type, values)) <= _PLAIN_NUMBERS and all(values):
                # The bulk of a scrape, by C code alone: cached heads, packed values.
                heads = self._labels.column(info.name, data.points,
                                            PAYLOAD + (1 if kind == _TYPE_COUNTER else 2))
                return delimited(header + b"".join(
                    chain.from_iterable(zip(heads, map(DOUBLE.pack, values)))))
        metrics = []
        for point, label_fields in zip(data.points, labels):
            value = point.value
            if info.kind == HISTOGRAM:
                body = field(7, histogram_message(info, value, histograms))
            elif isinstance(value, (HistogramValue, bool)):
                raise TypeError(f"metric {info.name}: a {type(value).__name__} value in a "
                                f"counter or gauge")
            else:
                body = field(3 if kind == _TYPE_COUNTER else 2, double_field(1, float(value)))
            metrics.append(field(4, label_fields + body))
        return delimited(header + b"".join(metrics))


def histogram_message(info: MetricInfo, value: int | float | HistogramValue,
                      histograms: str) -> bytes:
    """A client_model Histogram: count, sum, then classic buckets, native
    fields or both as `histograms` says (classic where the bounds are not log2)."""
    if not isinstance(value, HistogramValue):
        raise TypeError(f"metric {info.name}: a histogram point without a HistogramValue")
    check_buckets(info, value)
    head = varint_field(1, value.count) + double_field(2, value.sum)
    native = native_fields(info, value) if histograms != CLASSIC else None
    classic = _classic_buckets(info, value) if histograms != NATIVE or native is None else b""
    return head + classic + (native or b"")


def wants_protobuf(accept: str | None) -> bool:
    """Whether an Accept header prefers the delimited MetricFamily format to
    every text format it also names (Prometheus sends it at q=0.8 with native
    histograms on, the text formats lower)."""
    if not accept:
        return False
    best_text, protobuf = 0.0, 0.0
    for media_range in accept.split(","):
        kind, *params = (part.strip() for part in media_range.split(";"))
        values = dict(param.partition("=")[::2] for param in params)
        try:
            quality = float(values.get("q", "1"))
        except ValueError:
            quality = 0.0
        if kind.lower() == "application/vnd.google.protobuf":
            if (values.get("proto") == "io.prometheus.client.MetricFamily"
                    and values.get("encoding") == "delimited"):
                protobuf = max(protobuf, quality)
        elif kind:
            best_text = max(best_text, quality)
    return protobuf > 0 and protobuf >= best_text
