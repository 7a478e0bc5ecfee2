"""A snapshot as encoded OTLP requests of at most N points each: the SDK's data
classes (pipeline/otel.py) through the SDK's own protobuf encoder. Cumulative
exporters that share a snapshot share its encoding: it is made once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.pipeline.otel import to_metrics_data
from ig_metrics.pipeline.snapshot import MetricData, Snapshot


@dataclass(frozen=True, slots=True)
class Encoded:
    requests: tuple[bytes, ...]
    points: tuple[int, ...]            # data points in each request

    @property
    def total_points(self) -> int:
        return sum(self.points)


def split(snapshot: Snapshot, max_points: int) -> list[Snapshot]:
    """`snapshot` cut into snapshots of at most `max_points` points, metric by
    metric and in order (a metric may straddle two)."""
    chunks: list[Snapshot] = []
    current: list[MetricData] = []
    room = max_points
    for data in snapshot.metrics:
        points = data.points
        while points:
            taken, points = points[:room], points[room:]
            current.append(MetricData(data.info, taken))
            room -= len(taken)
            if room == 0:
                chunks.append(replace(snapshot, metrics=tuple(current)))
                current, room = [], max_points
    if current:
        chunks.append(replace(snapshot, metrics=tuple(current)))
    return chunks


def encode(snapshot: Snapshot, temporality: AggregationTemporality, max_points: int) -> Encoded:
    requests, counts = [], []
    for chunk in split(snapshot, max_points):
        request = encode_metrics(to_metrics_data(chunk, temporality))
        requests.append(request.SerializeToString())
        counts.append(chunk.series_count)
    return Encoded(tuple(requests), tuple(counts))


class SharedEncodings:
    """The encoding of the latest snapshots, keyed by the snapshot object (a
    limited snapshot is a new object, so exporters whose limits changed it get
    their own), the temporality and the request size. The first exporter to ask
    encodes; the others wait for it rather than encode again."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[Snapshot, threading.Event, list[Encoded]]] = {}

    def get(self, snapshot: Snapshot, temporality: AggregationTemporality,
            max_points: int) -> Encoded:
        key = (id(snapshot), temporality, max_points)
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None or entry[0] is not snapshot
            if owner:
                entry = (snapshot, threading.Event(), [])
                self._entries[key] = entry
                while len(self._entries) > self.keep:
                    self._entries.pop(next(iter(self._entries)))
        _, done, result = entry
        if owner:
            try:
                result.append(encode(snapshot, temporality, max_points))
            finally:
                done.set()
        else:
            done.wait()
        if not result:      # the owner's encoding raised: do it here, for the error
            return encode(snapshot, temporality, max_points)
        return result[0]


SHARED = SharedEncodings()
