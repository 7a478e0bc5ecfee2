"""CPU cost of one sampler tick and of one export at 1k, 10k and 100k series:
the kernel maps of a tcp-shaped benchmark gadget (benchmarks/gadgets/scale)
are filled from user space, then read, decoded and turned into a snapshot by
the real sampler. Each snapshot is then exported, each way side by side:

  OTLP: the real otlp-grpc exporter (cumulative, default limits: requests of
        1000 points, far under gRPC's 4 MiB) sending to a gRPC server in
        another process that discards what it gets; against the SDK path,
        the SDK's data classes and encoder (tests/sdk_oracle.encode_with_sdk) sent
        over the same kind of channel.
  Prometheus text: the snapshot rendered as classic text exposition by the
        exporter's collector; against prometheus_client's encoder
        (generate_latest) over the collector's families.
  Prometheus scrape: one HTTP scrape, as Prometheus 2.42 asks (OpenMetrics,
        gzip), made by another process, of the real prometheus exporter;
        against prometheus_client's own app over the same families.

CPU time (time.process_time: every thread of this process, the HTTP server's
and gRPC's included, none of the receivers'), medians of several exports,
each of a new snapshot; the first tick (which decodes every key) and the first
export (which encodes every series' attributes) are reported apart.

Run as root from the repository root:
    .venv/bin/python benchmarks/sampler_scale.py --series 1000 10000 100000
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# IG_METRICS_CODE: the code to measure (benchmarks/revision.py), this checkout by default
sys.path.insert(0, os.environ.get("IG_METRICS_CODE", str(ROOT)))
sys.path.insert(0, str(ROOT / "benchmarks"))

from export_cost import start_sinks  # noqa: E402
from ig_metrics.bpf.loader import GadgetProgram  # noqa: E402
from ig_metrics.bpf.maps import POSSIBLE_CPUS  # noqa: E402
from ig_metrics.gadgets import resolve  # noqa: E402
from ig_metrics.pipeline.sampler import Sampler  # noqa: E402

GADGET = ROOT / "benchmarks" / "gadgets" / "scale"
HISTOGRAM_SHARE = 10          # one series in ten also has a latency histogram


def fill(program: GadgetProgram, series: int) -> None:
    """`series` distinct keys in `counts`, a tenth of them in `latency`, with
    values on every CPU, written with one batch update per map."""
    counts = program.table("counts")
    keys = (counts.Key * series)()
    values = (counts.Leaf * series)()
    for index in range(series):
        key = keys[index]
        key.pid = 1000 + index % 5000
        key.server_port = 1 + index // 5000
        key.family = 4
        key.direction = 1
        key.peer[0], key.peer[1], key.peer[2], key.peer[3] = 10, index >> 16 & 255, \
            index >> 8 & 255, index & 255
        for cpu in range(POSSIBLE_CPUS):
            values[index][cpu].sent = 1000 + index
            values[index][cpu].received = 2000 + index
            values[index][cpu].opened = 1
    counts.items_update_batch(keys, values)
    latency = program.table("latency")
    hist_count = max(1, series // HISTOGRAM_SHARE)
    hist_keys = (latency.Key * hist_count)()
    hist_values = (latency.Leaf * hist_count)()
    for index in range(hist_count):
        ct.memmove(ct.byref(hist_keys[index]), ct.byref(keys[index * HISTOGRAM_SHARE]),
                   ct.sizeof(latency.Key))
        for cpu in range(POSSIBLE_CPUS):
            hist_values[index][cpu].slots[5] = 3
            hist_values[index][cpu].slots[9] = 1
            hist_values[index][cpu].sum = 3 * 20 + 300
    latency.items_update_batch(hist_keys, hist_values)


def cpu_seconds(function, repeat: int) -> list[float]:
    spent = []
    for _ in range(repeat):
        started = time.process_time()
        function()
        spent.append(time.process_time() - started)
    return spent


# What Prometheus 2.42 (Debian 12's) sends with each scrape.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


class Exports:
    """The exporters under test and their SDK/library counterparts, with the
    receivers in another process (`sinks`, export_cost.run_sinks)."""

    def __init__(self, sinks, grpc_port: int) -> None:
        import grpc
        from prometheus_client import CollectorRegistry, make_wsgi_app

        from ig_metrics.config.model import ExporterTemplate, ResolvedExporter
        from ig_metrics.exporters.delivery.retry import RetrySettings
        from ig_metrics.exporters.otlp import requests as otlp_requests
        from ig_metrics.exporters.otlp.common import OtlpSettings
        from ig_metrics.exporters.otlp.grpc import GrpcTransport
        from ig_metrics.exporters.otlp.wire import WireEncoder
        from ig_metrics.exporters.prometheus.exporter import PrometheusSettings, SnapshotCollector
        from ig_metrics.exporters.prometheus.webserver import serve
        from ig_metrics.exporters.registry import create_exporter

        def resolved(name, type_, settings):
            return ResolvedExporter(ExporterTemplate(name, type_, settings, 10.0, "bench", 1),
                                    10.0)

        self.sinks = sinks
        # A new size starts cold, as a new agent would: no attributes encoded yet.
        otlp_requests.SHARED.encoder = WireEncoder()
        self.otlp = create_exporter(resolved("grpc", "otlp-grpc", OtlpSettings(
            f"127.0.0.1:{grpc_port}", insecure=True, timeout=120)))
        self.prometheus = create_exporter(resolved("prom", "prometheus",
                                                   PrometheusSettings("127.0.0.1", 0)))
        self.otlp.start()
        self.prometheus.start()
        self.sdk_transport = GrpcTransport(f"127.0.0.1:{grpc_port}", credentials=None,
                                           headers=(), compression=grpc.Compression.NoCompression,
                                           retry=RetrySettings())
        self.library_collector = SnapshotCollector()
        self.library_registry = CollectorRegistry(auto_describe=False)
        self.library_registry.register(self.library_collector)
        self.library_server, _ = serve("127.0.0.1", 0, make_wsgi_app(self.library_registry),
                                       tls=None, users=())
        self.text_collector = SnapshotCollector()

    def otlp_export(self, snapshot) -> None:
        result = self.otlp.export(snapshot, 120.0)
        assert result.value == "success", self.otlp.failure

    def otlp_sdk_path(self, snapshot) -> None:
        from opentelemetry.sdk.metrics.export import AggregationTemporality

        from tests.sdk_oracle import encode_with_sdk

        for request in encode_with_sdk(snapshot, AggregationTemporality.CUMULATIVE,
                                       self.otlp.settings.limits.max_points_per_export).requests:
            assert self.sdk_transport.send(request, 120.0).failure is None

    def text(self, snapshot) -> None:
        from ig_metrics.exporters.prometheus.text import TextFormat

        self.text_collector.show(snapshot)
        assert self.text_collector.text(TextFormat(openmetrics=False))

    def library_text(self, snapshot) -> None:
        from prometheus_client import generate_latest

        self.library_collector.show(snapshot)
        assert generate_latest(self.library_registry)

    def scrape(self, snapshot) -> None:
        self.prometheus.export(snapshot, 5.0)
        self._get(self.prometheus.bound_port)

    def library_scrape(self, snapshot) -> None:
        self.library_collector.show(snapshot)
        self._get(self.library_server.server_address[1])

    def _get(self, port: int) -> None:
        self.sinks.send((f"http://127.0.0.1:{port}/metrics", PROMETHEUS_HEADERS))
        assert self.sinks.recv() > 0

    def close(self) -> None:
        self.otlp.shutdown(5.0)
        self.prometheus.shutdown(5.0)
        self.sdk_transport.close()
        self.library_server.shutdown()
        self.library_server.server_close()


def measure(series: int, repeat: int, sinks, grpc_port: int) -> dict:
    spec = resolve(str(GADGET))
    program = GadgetProgram(spec, cflags=(f"-DMAX_SERIES={max(series, 1024) * 2}",))
    program.load()
    exports = Exports(sinks, grpc_port)
    try:
        fill(program, series)
        sampler = Sampler(spec, program, resource=(("service.name", "bench"),), idle_expiry=0)
        started = time.process_time()
        snapshot = sampler.tick()
        first_tick = time.process_time() - started
        ticks = cpu_seconds(sampler.tick, repeat)
        spent: dict[str, list[float]] = {}
        # Every export is of a new snapshot, as at every interval: the encoders
        # keep each series' attributes, never a whole snapshot's encoding.
        for _ in range(repeat + 1):
            snapshot = sampler.tick()
            for name, export in (("otlp", exports.otlp_export),
                                 ("otlp_sdk", exports.otlp_sdk_path),
                                 ("text", exports.text),
                                 ("text_library", exports.library_text),
                                 ("scrape", exports.scrape),
                                 ("scrape_library", exports.library_scrape)):
                started = time.process_time()
                export(snapshot)
                spent.setdefault(name, []).append(time.process_time() - started)
    finally:
        exports.close()
        program.close()
    row = {"series": series, "points": snapshot.point_count, "first_tick": first_tick,
           "tick": statistics.median(ticks)}
    for name, seconds in spent.items():
        row[f"{name}_first"] = seconds[0]
        row[name] = statistics.median(seconds[1:])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sinks, receivers, grpc_port, _ = start_sinks()
    print("| series | points | first tick s | tick s | OTLP export s: ig-metrics / SDK path | "
          "first OTLP export s | Prometheus text s: ig-metrics / prometheus_client | "
          "Prometheus scrape s: ig-metrics / prometheus_client | first scrape s |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for series in args.series:
            row = measure(series, args.repeat, sinks, grpc_port)
            print(f"| {row['series']:,} | {row['points']:,} | {row['first_tick']:.3f} | "
                  f"{row['tick']:.3f} | {row['otlp']:.3f} / {row['otlp_sdk']:.3f} | "
                  f"{row['otlp_first']:.3f} | {row['text']:.3f} / {row['text_library']:.3f} | "
                  f"{row['scrape']:.3f} / {row['scrape_library']:.3f} | "
                  f"{row['scrape_first']:.3f} |", flush=True)
    finally:
        sinks.send(None)
        receivers.join(10)


if __name__ == "__main__":
    main()
