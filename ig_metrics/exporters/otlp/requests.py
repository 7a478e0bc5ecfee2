"""A snapshot as encoded OTLP requests of at most N points each, written by
wire.py (the same bytes as the SDK's data classes through the SDK's own
protobuf encoder: tests/sdk_oracle.py's `encode_with_sdk`, which the tests and
benchmarks compare with). Cumulative exporters that share a snapshot share its
encoding: it is made once."""

from __future__ import annotations

import logging
import threading

from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.exporters.encoding.chunks import Encoded, split
from ig_metrics.exporters.otlp.wire import WireEncoder
from ig_metrics.model.snapshot import Snapshot

log = logging.getLogger("ig_metrics.exporters")


# A gRPC server refuses a message over 4 MiB unless configured otherwise (the
# OpenTelemetry Collector's default): no request is let grow past this.
MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 64 * 1024


def encode(snapshot: Snapshot, temporality: AggregationTemporality, max_points: int,
           encoder: WireEncoder, exponential: bool = False) -> Encoded:
    """`encoder` keeps the encoded attributes of the series it saw last: give
    each stream of snapshots (the shared cumulative ones, one delta exporter's)
    its own. Requests hold at most `max_points` points, and fewer when that
    many would pass MAX_REQUEST_BYTES (long attributes, a large max_points)."""
    while True:
        chunks = split(snapshot, max_points)
        requests = tuple(encoder.encode(chunks, temporality, exponential))
        largest = max(map(len, requests), default=0)
        if largest <= MAX_REQUEST_BYTES or max_points == 1:
            return Encoded(requests, tuple(chunk.point_count for chunk in chunks))
        # Rare (the default cap keeps requests near 1 MB): encode again, in
        # requests small enough with room to spare.
        max_points = max(1, int(max_points * MAX_REQUEST_BYTES / largest * 0.9))


# How long an exporter waits for another's encoding of the same snapshot when
# it does not say (its export timeout).
DEFAULT_WAIT = 10.0
# A snapshot's encodings: its id, temporality, points per request, exponential histograms
_Key = tuple[int, AggregationTemporality, int, bool]


class SharedEncodings:
    """The encoding of the latest snapshots, keyed by the snapshot object (a
    limited snapshot is a new object, so exporters whose limits changed it get
    their own), the temporality and the request size. The first exporter to ask
    encodes; the others wait for it rather than encode again."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.encoder = WireEncoder()
        self._lock = threading.Lock()
        self._entries: dict[_Key, tuple[Snapshot, threading.Event, list[Encoded]]] = {}

    def get(self, snapshot: Snapshot, temporality: AggregationTemporality,
            max_points: int, timeout: float = DEFAULT_WAIT, exponential: bool = False,
            ) -> Encoded:
        """The encoding, made here or by the exporter already making it. No
        exporter waits on another's thread longer than `timeout` seconds (its own
        export timeout): past it, it encodes the snapshot itself, with an
        encoder of its own (no cached attributes: slower, the same bytes)."""
        key = (id(snapshot), temporality, max_points, exponential)
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None or entry[0] is not snapshot
            if entry is None or owner:
                entry = (snapshot, threading.Event(), [])
                self._entries[key] = entry
                # Only the latest tick's snapshots are asked for again (by the
                # other exporters of that tick). An older entry is not pushed
                # out by newer ones on its own: the id of a freed snapshot is
                # often the next one's, which then takes that entry's place, so
                # the snapshots of a burst stayed here, with their encodings,
                # long after their series were gone (docs/performance.md).
                newest = max(kept.time_ns for kept, _, _ in self._entries.values())
                for stale in [name for name, (kept, _, _) in self._entries.items()
                              if kept.time_ns < newest]:
                    del self._entries[stale]
                while len(self._entries) > self.keep:
                    self._entries.pop(next(iter(self._entries)))
        _, done, result = entry
        if owner:
            try:
                result.append(encode(snapshot, temporality, max_points, self.encoder,
                                     exponential))
            finally:
                done.set()
        elif not done.wait(timeout):
            log.warning("exporter encoding: another exporter's encoding of snapshot %d took "
                        "over %gs; encoding it again here", snapshot.seq, timeout)
            return encode(snapshot, temporality, max_points, WireEncoder(), exponential)
        if not result:      # the owner's encoding raised: do it here, for the error
            return encode(snapshot, temporality, max_points, self.encoder, exponential)
        return result[0]


SHARED = SharedEncodings()
