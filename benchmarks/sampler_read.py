"""The sampler at scale (issue 7, target 3): reading a per-CPU hash map of N
series through batch lookups, and one whole tick (read, change detection,
points, expiry), when none, 1%, 10% or all of the series changed since the
last tick. The maps of the tcp-shaped benchmark gadget (benchmarks/gadgets/
scale) are filled from user space (benchmarks/sampler_scale.py's fill) and
changed between ticks with one batch update. CPU time (time.process_time) of
this process, medians of --repeat runs.

Run as root from the repository root:
    .venv/bin/python benchmarks/sampler_read.py --series 1000 10000 100000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sampler_scale import GADGET, fill  # noqa: E402

from ig_metrics.bpf.loader import GadgetProgram  # noqa: E402
from ig_metrics.bpf.maps import POSSIBLE_CPUS  # noqa: E402
from ig_metrics.gadgets import resolve  # noqa: E402
from ig_metrics.pipeline.sampler import Sampler  # noqa: E402

SHARES = (0.0, 0.01, 0.1, 1.0)


def change(program: GadgetProgram, share: float, round_: int) -> None:
    """Adds to the counts of `share` of the series (spread over the map)."""
    counts = program.table("counts")
    keys, values = [], []
    for key, value in counts.items():
        keys.append(key)
        values.append(value)
    step = max(1, round(1 / share)) if share else 0
    chosen = range(0, len(keys), step) if step else ()
    if not chosen:
        return
    Key, Leaf = counts.Key, counts.Leaf
    batch_keys = (Key * len(chosen))()
    batch_values = (Leaf * len(chosen))()
    for slot, index in enumerate(chosen):
        batch_keys[slot] = keys[index]
        for cpu in range(POSSIBLE_CPUS):
            batch_values[slot][cpu].sent = values[index][cpu].sent + round_
            batch_values[slot][cpu].received = values[index][cpu].received
            batch_values[slot][cpu].opened = values[index][cpu].opened
    counts.items_update_batch(batch_keys, batch_values)


def cpu(function) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


def measure(series: int, repeat: int) -> dict:
    spec = resolve(str(GADGET))
    program = GadgetProgram(spec, cflags=(f"-DMAX_SERIES={max(series, 1024) * 2}",))
    program.load()
    try:
        fill(program, series)
        sampler = Sampler(spec, program, resource=(), idle_expiry=0)
        source = sampler.counters[0]
        row = {"series": series, "first tick": cpu(sampler.tick)}
        row["batch syscall"] = statistics.median(cpu(source.reader.read) for _ in range(repeat))
        row["map read"] = statistics.median(cpu(source.read) for _ in range(repeat))
        for share in SHARES:
            spent = []
            for round_ in range(repeat):
                change(program, share, round_ + 1)
                spent.append(cpu(sampler.tick))
            row[f"tick {share:.0%} changed"] = statistics.median(spent)
    finally:
        program.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [measure(series, args.repeat) for series in args.series]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print(f"| {row['series']:,} | " + " | ".join(f"{row[name] * 1000:.1f} ms"
                                                     for name in columns[1:]) + " |")


if __name__ == "__main__":
    main()
