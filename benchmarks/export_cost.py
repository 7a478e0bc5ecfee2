"""CPU cost per export interval of the sampler and of the exporters, at 1k, 10k
and 100k series with 1, 3 and 5 exporters.

Sampler: a real kernel map (tests/gadgets/userfilled, a BPF hash of
counters) filled from user space with N series, read by the real Sampler
(batch read, decode of pid/peer address/port, snapshot); every value changes
between two readings, as under load. Exporters: the real exporters, fed the
snapshots the sampler made, sending to sinks in another process (a gRPC
server and an HTTP server that discard what they get, and a scraper that GETs
the Prometheus endpoint once per interval), so that only ig-metrics' own
work is measured. CPU is the process' user+system time (time.process_time:
every thread, gRPC's included) around each step; medians over the intervals;
malloc is set as `ig-metrics run` sets it (benchmarks/revision.py).

    1 exporter:  otlp-grpc (cumulative)
    3 exporters: + otlp-http (cumulative, gzip) + prometheus (scraped)
    5 exporters: + otlp-grpc (delta) + otlp-http (delta)

Run as root from the repository root:
    .venv/bin/python benchmarks/export_cost.py --intervals 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# IG_METRICS_CODE: the code to measure (benchmarks/revision.py), this checkout by default
sys.path.insert(0, os.environ.get("IG_METRICS_CODE", str(ROOT)))

GADGET = ROOT / "tests" / "gadgets" / "userfilled"
EXPORT_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


# --- sinks, in their own process ---------------------------------------------------
def run_sinks(connection) -> None:
    """A gRPC and an HTTP OTLP sink that discard, and a scraper on demand
    (sent a URL, or a URL and headers; answers with the body's size)."""
    from concurrent import futures
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import grpc

    def discard(request, context):
        return b""

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
        {"Export": grpc.unary_unary_rpc_method_handler(discard)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((handler,))
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    http.daemon_threads = True
    import threading
    threading.Thread(target=http.serve_forever, daemon=True).start()
    connection.send((grpc_port, http.server_address[1]))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        asked = connection.recv()          # a URL, or (URL, request headers)
        if asked is None:
            break
        url, headers = asked if isinstance(asked, tuple) else (asked, {})
        with opener.open(urllib.request.Request(url, headers=headers), timeout=120) as response:
            size = len(response.read())
        connection.send(size)
    server.stop(0)
    http.shutdown()


def start_sinks():
    """(our end of the pipe, the process, gRPC port, HTTP port) of the sinks,
    after checking for root (the sampler reads a real BPF map) and dropping
    OTEL_* and *_proxy settings from the environment (the SDK and requests
    read them)."""
    if os.geteuid() != 0:
        sys.exit("run as root: the sampler reads a real BPF map")
    for name in list(os.environ):
        if name.startswith("OTEL_") or name.lower().endswith("_proxy"):
            del os.environ[name]
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    sinks = context.Process(target=run_sinks, args=(theirs,), daemon=True)
    sinks.start()
    grpc_port, http_port = ours.recv()
    return ours, sinks, grpc_port, http_port


# --- the kernel map ------------------------------------------------------------------
def fill(table, count: int, round_: int) -> None:
    """`count` series: pid, an IPv4 peer and a port each; every value grows per round."""
    keys = (table.Key * count)()
    values = (table.Leaf * count)()
    for index in range(count):
        key = keys[index]
        key.pid = 1000 + index // 50
        key.port = 1024 + index % 50
        key.family = 4
        key.peer[0:4] = [10, (index >> 16) & 255, (index >> 8) & 255, index & 255]
        values[index].sent = (round_ + 1) * (index + 1) * 100
        values[index].received = (round_ + 1) * (index + 1) * 10
    table.items_update_batch(keys, values)


def exporter_configs(count: int, grpc_port: int, http_port: int, prom_port: int):
    from ig_metrics.config.model import ExporterTemplate, ResolvedExporter
    from ig_metrics.exporters.otlp.common import OtlpSettings
    from ig_metrics.exporters.prometheus.exporter import PrometheusSettings

    def resolved(name, type_, settings):
        template = ExporterTemplate(name, type_, settings, 10.0, "bench", 1)
        return ResolvedExporter(template, 10.0)

    grpc_endpoint = f"127.0.0.1:{grpc_port}"
    http_url = f"http://127.0.0.1:{http_port}/v1/metrics"
    every = [
        resolved("grpc", "otlp-grpc", OtlpSettings(grpc_endpoint, insecure=True, timeout=60)),
        resolved("http", "otlp-http", OtlpSettings(http_url, timeout=60, compression="gzip")),
        resolved("prom", "prometheus", PrometheusSettings("127.0.0.1", prom_port)),
        resolved("grpc-delta", "otlp-grpc", OtlpSettings(grpc_endpoint, insecure=True,
                                                         timeout=60, temporality="delta")),
        resolved("http-delta", "otlp-http", OtlpSettings(http_url, timeout=60,
                                                         temporality="delta")),
    ]
    return every[:count]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(series: int, exporter_counts: list[int], intervals: int, connection,
            grpc_port: int, http_port: int) -> list[dict]:
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.exporters.registry import create_exporter
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler
    from revision import malloc_as_run

    malloc_as_run()
    spec = resolve(str(GADGET))
    program = GadgetProgram(spec, cflags=(f"-DMAX_FLOWS={max(1024, series * 2)}",))
    program.load()
    table = program.table("flows")
    sampler = Sampler(spec, program, resource=(("service.name", "bench"),), idle_expiry=0)
    fill(table, series, 0)
    started = time.process_time()
    sampler.tick()
    first_tick = time.process_time() - started
    rows = []
    for count in exporter_counts:
        prom_port = free_port()
        exporters = [create_exporter(config)
                     for config in exporter_configs(count, grpc_port, http_port, prom_port)]
        for exporter in exporters:
            exporter.start()
        sampler_cpu, export_cpu = [], []
        for round_ in range(1, intervals + 2):
            fill(table, series, round_)
            before = time.process_time()
            snapshot = sampler.tick()
            sampler_cpu.append(time.process_time() - before)
            before = time.process_time()
            for exporter in exporters:
                result = exporter.export(snapshot, 60.0)
                assert result.value == "success", (exporter.name, exporter.last_failure)
            if count >= 3:
                connection.send(f"http://127.0.0.1:{prom_port}/metrics")
                connection.recv()
            export_cpu.append(time.process_time() - before)
        for exporter in exporters:
            exporter.shutdown(5.0)
        # The first round of each set warms caches (delta baselines, renderers).
        rows.append({"series": series, "exporters": count,
                     "first_tick": first_tick,
                     "sampler": statistics.median(sampler_cpu[1:]),
                     "exporters_cpu": statistics.median(export_cpu[1:])})
        print(f"  {series:>7} series, {count} exporter(s): sampler "
              f"{rows[-1]['sampler'] * 1e3:8.1f} ms, exporters "
              f"{rows[-1]['exporters_cpu'] * 1e3:8.1f} ms", flush=True)
    program.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--exporters", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--intervals", type=int, default=5)
    args = parser.parse_args()
    ours, sinks, grpc_port, http_port = start_sinks()
    rows = []
    for series in args.series:
        rows += measure(series, args.exporters, args.intervals, ours, grpc_port, http_port)
    ours.send(None)
    sinks.join(10)
    print()
    print("| series | exporters | sampler CPU ms/interval | exporters CPU ms/interval "
          "| total ms/interval | µs per series (total) | first reading ms |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        total = row["sampler"] + row["exporters_cpu"]
        print(f"| {row['series']:,} | {row['exporters']} | {row['sampler'] * 1e3:.1f} | "
              f"{row['exporters_cpu'] * 1e3:.1f} | {total * 1e3:.1f} | "
              f"{total / row['series'] * 1e6:.1f} | {row['first_tick'] * 1e3:.0f} |")


if __name__ == "__main__":
    main()
