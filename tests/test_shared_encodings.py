"""The encodings cumulative OTLP exporters share (exporters/otlp/requests.py) hold
only the latest tick's snapshots: a snapshot from before, however big, is let
go as soon as a newer one is encoded, even when the newer one takes the
freed snapshot's id (which Python often gives the next object)."""

from __future__ import annotations

import gc

from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.exporters.otlp.requests import SharedEncodings
from ig_metrics.model.snapshot import COUNTER, MetricData, MetricInfo, Point, Snapshot

SENT = MetricInfo("tcp.sent", COUNTER, "By", "")
CUMULATIVE = AggregationTemporality.CUMULATIVE


def snapshot(seq: int, series: int) -> Snapshot:
    return Snapshot(seq, seq * 1_000_000_000, "tcp", (), (MetricData(SENT, tuple(
        Point((("process.pid", pid),), 100 + pid, 0) for pid in range(series))),))


def held(shared: SharedEncodings) -> list[int]:
    return sorted(kept.seq for kept, _, _ in shared._entries.values())


def test_only_the_latest_ticks_snapshots_are_kept() -> None:
    shared = SharedEncodings()
    burst = snapshot(1, 5000)
    shared.get(burst, CUMULATIVE, 1000)
    assert shared.get(burst, CUMULATIVE, 1000) is shared.get(burst, CUMULATIVE, 1000)
    shared.get(burst, CUMULATIVE, 500)          # another request size, the same tick
    assert held(shared) == [1, 1]
    del burst
    gc.collect()
    for seq in range(2, 8):                     # each new snapshot may reuse a freed id
        shared.get(snapshot(seq, 3), CUMULATIVE, 1000)
        assert held(shared) == [seq]
