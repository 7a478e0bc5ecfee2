"""Bytes and CPU of one export in each histogram format, side by side in one
run, at 10k and 100k series of which 10% are histograms (27 log2 slots of
microseconds, as the tcp gadget's durations; counters with tcp's attributes):

    scrape, classic:  the text exposition (what a Prometheus without native
                      histograms gets): _bucket/_count/_sum lines
    scrape, native:   the protobuf exposition, histograms: native
    scrape, both:     the protobuf exposition, histograms: both (the default
                      answer to a native-histogram Prometheus)
    remote write:     WriteRequests (1000 points each) of classic series and of
                      native histograms, snappy-compressed
    OTLP push:        ExportMetricsServiceRequests (1000 points each), explicit
                      and exponential histograms, gzip as compression: gzip does

Each is the real code path of the exporter: SnapshotCollector.text/protobuf,
RemoteWriteEncoder + snappy, encode() of otlp/wire.py. Every measured round is
a new snapshot with the same series (their attribute tuples kept, as the
sampler keeps them) and new values, after one round that fills the caches:
the steady state of a running agent. CPU is time.process_time() (user+system)
of the step; the median of --rounds. Bytes are the body sent (scrape text
without gzip, then with the level the exporter uses). Run from the repository
root:

    .venv/bin/python benchmarks/histogram_formats.py --rounds 5
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.metrics.export import AggregationTemporality  # noqa: E402

from ig_metrics.exporters.encoding.chunks import split  # noqa: E402
from ig_metrics.exporters.otlp.requests import encode  # noqa: E402
from ig_metrics.exporters.otlp.wire import WireEncoder  # noqa: E402
from ig_metrics.exporters.prometheus.exporter import SnapshotCollector  # noqa: E402
from ig_metrics.exporters.prometheus.proto import BOTH, NATIVE  # noqa: E402
from ig_metrics.exporters.prometheus.text import GZIP_LEVEL, TextFormat  # noqa: E402
from ig_metrics.exporters.remotewrite.wire import (  # noqa: E402
    CLASSIC,
    RemoteWriteEncoder,
    compress,
)
from ig_metrics.model.snapshot import (  # noqa: E402
    COUNTER,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)

BOUNDS = tuple(((1 << slot) - 1) / 1e6 for slot in range(27))
RESOURCE = (("service.name", "ig-metrics"), ("host.name", "node-1"),
            ("ig_metrics.gadget", "tcp"))
START_NS = 1_700_000_000_000_000_000
POINTS_PER_REQUEST = 1000


def attributes(index: int) -> tuple:
    return (("process.pid", 1000 + index % 30000), ("process.command", f"worker-{index % 97}"),
            ("network.peer.address", f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"),
            ("server.port", 443 + index % 7), ("network.type", "ipv4"),
            ("tcp.connection.direction", "outbound"))


class Workload:
    """N series, 10% histograms; each round's values differ from the last."""

    def __init__(self, series: int) -> None:
        histograms = series // 10
        self.counter_attributes = [attributes(i) for i in range(series - histograms)]
        self.histogram_attributes = [attributes(i) for i in range(histograms)]

    def snapshot(self, round_: int) -> Snapshot:
        sent = MetricInfo("tcp.sent", COUNTER, "By", "Bytes sent over TCP.")
        duration = MetricInfo("tcp.connect.duration", HISTOGRAM, "s",
                              "Time to establish a connection.", BOUNDS)
        counters = tuple(Point(attrs, 1000 * round_ + i, START_NS)
                         for i, attrs in enumerate(self.counter_attributes))
        histograms = []
        for i, attrs in enumerate(self.histogram_attributes):
            counts = [0] * (len(BOUNDS) + 1)
            # A few occupied slots around 100 us .. 10 ms, as connect times are.
            for slot in (7 + i % 3, 10 + i % 4, 13 + i % 2):
                counts[slot] += round_ + i % 5
            histograms.append(Point(attrs, HistogramValue(tuple(counts), 0.001 * sum(counts),
                                                          sum(counts)), START_NS))
        return Snapshot(seq=round_, time_ns=START_NS + round_ * 10**10, gadget="tcp",
                        resource=RESOURCE, metrics=(MetricData(sent, counters),
                                                    MetricData(duration, tuple(histograms))))


def scrape_text(collector: SnapshotCollector, snapshot: Snapshot) -> list[bytes]:
    collector.show(snapshot)
    return collector.text(TextFormat(False))


def scrape_protobuf(collector: SnapshotCollector, snapshot: Snapshot) -> list[bytes]:
    collector.show(snapshot)
    return collector.protobuf()


def remote_write(encoder: RemoteWriteEncoder, snapshot: Snapshot) -> list[bytes]:
    return [compress(request)
            for request in encoder.encode(split(snapshot, POINTS_PER_REQUEST))]


def otlp(encoder: WireEncoder, snapshot: Snapshot, exponential: bool) -> list[bytes]:
    requests = encode(snapshot, AggregationTemporality.CUMULATIVE, POINTS_PER_REQUEST, encoder,
                      exponential).requests
    return [gzip.compress(request, compresslevel=6) for request in requests]


def cases():
    """(name, make state, step(state, snapshot) -> body pieces, gzip the result?)"""
    return [
        ("scrape classic (text)", SnapshotCollector, scrape_text, True),
        ("scrape native (protobuf)", lambda: SnapshotCollector(NATIVE), scrape_protobuf, True),
        ("scrape both (protobuf)", lambda: SnapshotCollector(BOTH), scrape_protobuf, True),
        ("remote write classic (snappy)", lambda: RemoteWriteEncoder((), CLASSIC),
         remote_write, False),
        ("remote write native (snappy)", lambda: RemoteWriteEncoder((), NATIVE),
         remote_write, False),
        ("OTLP explicit (gzip)", WireEncoder, lambda e, s: otlp(e, s, False), False),
        ("OTLP exponential (gzip)", WireEncoder, lambda e, s: otlp(e, s, True), False),
    ]


def measure(series: int, rounds: int) -> list[tuple[str, float, int, int | None]]:
    workload = Workload(series)
    snapshots = [workload.snapshot(round_) for round_ in range(1, rounds + 2)]
    results = []
    for name, make, step, scrape in cases():
        state = make()
        step(state, snapshots[0])                 # fills the caches
        cpu, body = [], b""
        for snapshot in snapshots[1:]:
            started = time.process_time()
            pieces = step(state, snapshot)
            cpu.append(time.process_time() - started)
            body = b"".join(pieces)
        compressed = None
        if scrape:
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            compressed = len(compressor.compress(body) + compressor.flush())
        results.append((name, statistics.median(cpu), len(body), compressed))
    return results


def compression(series: int) -> str:
    """snappy (cramjam, what remote write sends) against zlib level 1 on the
    uncompressed classic remote write requests of `series` series."""
    import cramjam
    requests = RemoteWriteEncoder((), CLASSIC).encode(split(Workload(series).snapshot(1),
                                                            POINTS_PER_REQUEST))
    raw = sum(map(len, requests))
    started = time.process_time()
    snappy = sum(len(cramjam.snappy.compress_raw(request)) for request in requests)
    snappy_cpu = time.process_time() - started
    started = time.process_time()
    deflated = sum(len(zlib.compress(request, 1)) for request in requests)
    zlib_cpu = time.process_time() - started
    return (f"compression of {raw:,} bytes of remote write: snappy {snappy:,} bytes in "
            f"{snappy_cpu * 1000:.1f} ms, zlib level 1 {deflated:,} bytes in "
            f"{zlib_cpu * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--series", type=int, nargs="*", default=[10_000, 100_000])
    options = parser.parse_args()
    for series in options.series:
        results = measure(series, options.rounds)
        by_name = {name: (cpu, size, gz) for name, cpu, size, gz in results}
        print(f"\n{series} series ({series // 10} histograms), median of {options.rounds}")
        print(f"{'':32} {'CPU ms':>8} {'bytes':>12} {'gzip bytes':>12}")
        for name, cpu, size, gz in results:
            print(f"{name:32} {cpu * 1000:8.1f} {size:12,} {gz if gz is not None else '':>12,}"
                  if gz is not None else f"{name:32} {cpu * 1000:8.1f} {size:12,}")
        classic, native = by_name["scrape classic (text)"], by_name["scrape native (protobuf)"]
        rw, rw_native = (by_name["remote write classic (snappy)"],
                         by_name["remote write native (snappy)"])
        explicit, exponential = by_name["OTLP explicit (gzip)"], by_name["OTLP exponential (gzip)"]
        print(f"ratios: scrape native/classic bytes {native[1] / classic[1]:.3f} "
              f"(gzip {native[2] / classic[2]:.3f}), CPU {native[0] / classic[0]:.3f}; "
              f"remote write/OTLP (classic vs explicit) bytes {rw[1] / explicit[1]:.3f}, "
              f"CPU {rw[0] / explicit[0]:.3f}; (native vs exponential) bytes "
              f"{rw_native[1] / exponential[1]:.3f}, CPU {rw_native[0] / exponential[0]:.3f}")
        print(compression(series))


if __name__ == "__main__":
    main()
