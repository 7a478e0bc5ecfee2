"""A snapshot cut into requests of at most N points (`split`), and those requests
once encoded (`Encoded`): what a push exporter queues and sends."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ig_metrics.model.snapshot import MetricData, Snapshot


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
        taken = 0
        while taken < len(points):
            piece = points[taken:taken + room]
            taken += len(piece)
            current.append(MetricData(data.info, piece))
            room -= len(piece)
            if room == 0:
                chunks.append(replace(snapshot, metrics=tuple(current)))
                current, room = [], max_points
    if current:
        chunks.append(replace(snapshot, metrics=tuple(current)))
    return chunks
