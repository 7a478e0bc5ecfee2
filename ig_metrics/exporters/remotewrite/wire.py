"""Snapshots as Prometheus remote write 1.0 requests: a prometheus.WriteRequest
protobuf of cumulative samples stamped with the snapshot's time, labels
sorted (`__name__`, the series' labels, external labels), classic histograms
as _bucket/_count/_sum series or native ones (schema 0, encoding/log2native.py),
then snappy-compressed (block format) as the protocol says. Written by hand like
otlp/wire.py; field numbers are prometheus/prompb's types.proto."""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate, chain, repeat
from operator import attrgetter
from typing import Any, overload

import cramjam
from prometheus_client.utils import floatToGoString

from ig_metrics.exporters.encoding.log2native import (
    Layout,
    layout_of,
    native_buckets,
    spans_and_deltas,
)
from ig_metrics.exporters.encoding.protobuf import (
    DOUBLE,
    double_field,
    field,
    fields,
    length,
    varint,
    varint_field,
    zigzag,
)
from ig_metrics.exporters.encoding.seriescache import PAYLOAD, SeriesCache
from ig_metrics.exporters.prometheus import naming
from ig_metrics.exporters.prometheus.proto import ZERO_THRESHOLD, label_pairs, span
from ig_metrics.model.snapshot import HISTOGRAM, Attributes, HistogramValue, Snapshot

log = logging.getLogger("ig_metrics.exporters")

VERSION = "0.1.0"
CLASSIC, NATIVE = "classic", "native"
_NAME = "__name__"
_VALUE = attrgetter("value")
_PLAIN_NUMBERS = {int, float}             # bool, a subclass of int, is refused below
# A series' number heads, by (metric name's Label field, timestamp size): _number_head
_Heads = dict[tuple[bytes, int], bytes]


def compress(request: bytes) -> bytes:
    """Snappy's block format (not its framing format), as remote write wants."""
    return bytes(cramjam.snappy.compress_raw(request))


def decompress(request: bytes) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(request))


def without_native_histograms(request: bytes) -> tuple[bytes, int]:
    """An uncompressed WriteRequest without its series that hold native
    histograms (TimeSeries field 4), and how many series those were; every
    other field as it was, in its order."""
    kept: list[memoryview] = []
    dropped = 0
    data = memoryview(request)
    try:
        for number, start, body, end in fields(data, 0, len(data)):
            if number == 1 and any(inner == 4 for inner, *_ in fields(data, body, end)):
                dropped += 1
            else:
                kept.append(data[start:end])
    except ValueError as error:
        raise ValueError(f"not a WriteRequest: {error}") from error
    return b"".join(kept), dropped


def _pair(name: str, value: str) -> bytes:
    return label_pairs([name], [value])


class RemoteWriteEncoder:
    """Writes WriteRequests with each series' label fields made once and kept
    while it lives. One encoding at a time (the caches are pruned after each)."""

    def __init__(self, external_labels: tuple[tuple[str, str], ...] = (),
                 histograms: str = CLASSIC) -> None:
        self.external = dict(external_labels)
        self.histograms = histograms
        self._lock = threading.Lock()
        self._labels = SeriesCache(self._sorted_labels)
        self._warned: set[str] = set()

    def _sorted_labels(self, attributes: Attributes,
                       ) -> tuple[tuple[str, ...], tuple[bytes, ...], _Heads]:
        """A series' labels with the external ones it does not have itself
        (Prometheus' rule), sorted by name: names and encoded Label fields."""
        plan = naming.label_plan(tuple(key for key, _ in attributes))
        labels = dict(self.external)
        labels.update(zip(plan.names, plan.values(attributes)))
        labels.pop(_NAME, None)
        names = tuple(sorted(labels))
        # The last column: number series' heads by metric (see _number_head).
        return names, tuple(_pair(name, labels[name]) for name in names), {}

    def encode(self, chunks: Iterable[Snapshot]) -> list[bytes]:
        """One uncompressed WriteRequest per chunk (see `compress`)."""
        with self._lock:
            self._labels.begin()
            # A metric's points in a chunk are known to the cache by the metric and
            # their place among its pieces, as in otlp/wire.py.
            pieces: dict[str, int] = {}
            # Prometheus name -> the metric that has it: a second metric of the same
            # name is left out, as the scrape endpoint does (its samples would
            # collide with the first's and the receiver refuse the request).
            owners: dict[str, str] = {}
            try:
                return [self._request(chunk, pieces, owners) for chunk in chunks]
            finally:
                self._labels.prune()

    def _request(self, snapshot: Snapshot, pieces: dict[str, int],
                 owners: dict[str, str]) -> bytes:
        timestamp = snapshot.time_ns // 1_000_000
        sample_tail = b"\x10" + varint(timestamp)         # Sample.timestamp (ms)
        parts: list[bytes] = []
        if snapshot.resource:
            names, pairs, _ = self._sorted_labels(tuple(
                (key, naming.label_value(value)) for key, value in snapshot.resource))
            parts.append(_series(_with_name(names, pairs, _pair(_NAME, "target_info")),
                                 _sample(1.0, sample_tail)))
        for data in snapshot.metrics:
            info = data.info
            name = naming.prometheus_metric_name(info.name, info.unit, info.kind)
            if owners.setdefault(name, info.name) != info.name:
                self._warn_once(name, info.name)
                continue
            named, bucket_name, count_name, sum_name = (
                _pair(_NAME, name + suffix) for suffix in ("", "_bucket", "_count", "_sum"))
            piece = pieces[info.name] = pieces.get(info.name, -1) + 1
            entries = self._labels.entries((info.name, piece), data.points)
            layout = layout_of(info) if (info.kind == HISTOGRAM
                                         and self.histograms == NATIVE) else None
            if info.kind != HISTOGRAM:
                values = list(map(_VALUE, data.points))
                if set(map(type, values)) <= _PLAIN_NUMBERS and all(values):
                    # The bulk of a push, by C code alone: each series' head (its
                    # TimeSeries tag and length, labels, Sample tag, length and
                    # value tag) kept per metric, then the value and the timestamp.
                    heads = [_number_head(entry, named, len(sample_tail))
                             for entry in entries]
                    parts.append(b"".join(chain.from_iterable(
                        zip(heads, map(DOUBLE.pack, values), repeat(sample_tail)))))
                    continue
            les = [_pair("le", floatToGoString(bound)) for bound in info.bounds] \
                + [_pair("le", "+Inf")]
            for point, entry in zip(data.points, entries):
                names, pairs = entry[PAYLOAD], entry[PAYLOAD + 1]
                value = point.value
                if info.kind != HISTOGRAM:
                    if isinstance(value, (HistogramValue, bool)):
                        raise TypeError(f"metric {info.name}: a {type(value).__name__} value "
                                        f"in a counter or gauge")
                    parts.append(_series(_with_name(names, pairs, named),
                                         _sample(float(value), sample_tail)))
                    continue
                if not isinstance(value, HistogramValue):
                    raise TypeError(f"metric {info.name}: a histogram point without a "
                                    f"HistogramValue")
                if len(value.counts) != len(info.bounds) + 1:
                    raise ValueError(f"metric {info.name}: {len(value.counts)} bucket counts "
                                     f"for {len(info.bounds)} bounds")
                if layout is not None:
                    parts.append(field(1, _with_name(names, pairs, named)
                                       + field(4, _native(layout, value, timestamp))))
                    continue
                bucket_labels = _with_name(names, pairs, bucket_name, "le")
                at = bucket_labels[1]
                for le, running in zip(les, accumulate(value.counts)):
                    parts.append(_series(bucket_labels[0][:at] + le + bucket_labels[0][at:],
                                         _sample(float(running), sample_tail)))
                parts.append(_series(_with_name(names, pairs, count_name),
                                     _sample(float(value.count), sample_tail)))
                parts.append(_series(_with_name(names, pairs, sum_name),
                                     _sample(float(value.sum), sample_tail)))
        return b"".join(parts)


    def _warn_once(self, name: str, otel_name: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning("metric %s is not sent: its Prometheus name %s is taken by another "
                        "metric", otel_name, name)


def _number_head(entry: list[Any], named: bytes, tail_size: int) -> bytes:
    """The bytes of a series' TimeSeries before its sample's 8-byte value, for a
    non-zero value and a timestamp field of `tail_size` bytes; kept in the
    series' cache entry (its last column) per metric name."""
    heads: _Heads = entry[PAYLOAD + 2]
    key = (named, tail_size)
    head = heads.get(key)
    if head is None:
        labels = _with_name(entry[PAYLOAD], entry[PAYLOAD + 1], named)
        sample_size = 9 + tail_size
        head = heads[key] = (b"\x0a" + length(len(labels) + 2 + sample_size) + labels
                             + b"\x12" + length(sample_size) + b"\x09")
    return head


@overload
def _with_name(names: tuple[str, ...], pairs: tuple[bytes, ...], name: bytes) -> bytes: ...
@overload
def _with_name(names: tuple[str, ...], pairs: tuple[bytes, ...], name: bytes,
               room_for: str) -> tuple[bytes, int]: ...
def _with_name(names: tuple[str, ...], pairs: tuple[bytes, ...], name: bytes,
               room_for: str = "") -> bytes | tuple[bytes, int]:
    """The Label fields of a series whose __name__ Label field is `name`, sorted.
    With `room_for` (a label name), also where that label's field goes."""
    at = bisect_left(names, _NAME)
    head = b"".join(pairs[:at]) + name
    if not room_for:
        return head + b"".join(pairs[at:])
    split = bisect_left(names, room_for, lo=at)
    middle = b"".join(pairs[at:split])
    return head + middle + b"".join(pairs[split:]), len(head) + len(middle)


def _sample(value: float, tail: bytes) -> bytes:
    """A Sample field: value (1, double; proto3 leaves 0 off), then `tail`, the
    timestamp field shared by every sample of a request."""
    if value:
        return b"\x12" + length(9 + len(tail)) + b"\x09" + DOUBLE.pack(value) + tail
    return b"\x12" + length(len(tail)) + tail


def _series(labels: bytes, sample: bytes) -> bytes:
    return field(1, labels + sample)


def _native(layout: Layout, value: HistogramValue, timestamp: int) -> bytes:
    """prompb.Histogram: count_int (1), sum (3), schema 0 (4, left off),
    zero_threshold (5), zero_count_int (6), positive spans (11) and deltas
    (12), timestamp (15). The oneof counts are on the wire even when 0."""
    buckets = native_buckets(layout, value)
    spans, deltas = spans_and_deltas(buckets)
    return b"".join([
        b"\x08" + varint(value.count), double_field(3, value.sum),
        double_field(5, ZERO_THRESHOLD), b"\x30" + varint(buckets.zero_count),
        *(field(11, span(offset, size)) for offset, size in spans),
        field(12, b"".join(map(zigzag, deltas))) if deltas else b"",
        varint_field(15, timestamp),
    ])
