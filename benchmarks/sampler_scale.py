"""CPU cost of one sampler tick and of one export at 1k, 10k and 100k series:
the kernel maps of a tcp-shaped benchmark gadget (benchmarks/gadgets/scale)
are filled from user space, then read, decoded and turned into a snapshot by
the real sampler; the snapshot is converted and encoded for OTLP, and
rendered as a Prometheus scrape. CPU time (time.process_time), medians of
several runs; the first tick (which decodes every key) is reported apart.

Run as root from the repository root:
    .venv/bin/python benchmarks/sampler_scale.py --series 1000 10000 100000
"""

from __future__ import annotations

import argparse
import ctypes as ct
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def measure(series: int, repeat: int) -> dict:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from prometheus_client import CollectorRegistry, generate_latest

    from ig_metrics.exporters.prometheus import SnapshotCollector
    from ig_metrics.pipeline.otel import to_metrics_data

    spec = resolve(str(GADGET))
    program = GadgetProgram(spec, cflags=(f"-DMAX_SERIES={max(series, 1024) * 2}",))
    program.load()
    try:
        fill(program, series)
        sampler = Sampler(spec, program, resource=(("service.name", "bench"),), idle_expiry=0)
        started = time.process_time()
        snapshot = sampler.tick()
        first_tick = time.process_time() - started
        ticks = cpu_seconds(sampler.tick, repeat)
        snapshot = sampler.tick()
        otlp = cpu_seconds(lambda: encode_metrics(to_metrics_data(snapshot))
                           .SerializeToString(), repeat)
        collector = SnapshotCollector()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)

        def scrape() -> None:
            collector.show(snapshot)
            generate_latest(registry)

        prometheus = cpu_seconds(scrape, repeat)
    finally:
        program.close()
    return {"series": series, "points": snapshot.series_count, "first_tick": first_tick,
            "tick": statistics.median(ticks), "otlp": statistics.median(otlp),
            "prometheus": statistics.median(prometheus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| series | points | first tick s | tick s | OTLP convert+encode s | "
          "Prometheus scrape s |")
    print("|---|---|---|---|---|---|")
    for series in args.series:
        row = measure(series, args.repeat)
        print(f"| {row['series']:,} | {row['points']:,} | {row['first_tick']:.3f} | "
              f"{row['tick']:.3f} | {row['otlp']:.3f} | {row['prometheus']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
