"""The sampler at scale: reading a per-CPU hash map of N
series through batch lookups, and one whole tick (read, change detection,
points, expiry), when none, 1%, 10% or all of the series changed since the
last tick. The maps of the tcp-shaped benchmark gadget (benchmarks/gadgets/
scale) are filled from user space (benchmarks/sampler_scale.py's fill) and
changed between ticks with one batch update. CPU time (time.process_time) of
this process, medians of --repeat runs.

Side by side: --before REV (default main) measures that revision of this
repository too (exported by `git archive`: benchmarks/revision.py), each size
in turn; "before / after" is the ratio. Each tick's CPU includes collecting
the youngest generation of Python's garbage right after it, and malloc is
set as `ig-metrics run` sets it (its thresholds fixed: bpf/memory.py).

Run as root from the repository root:
    .venv/bin/python benchmarks/sampler_read.py --series 1000 10000 100000
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revision import AFTER, code_for, environment, malloc_as_run, revisions_for, use_code  # noqa: E402

use_code()

from ig_metrics.bpf.loader import GadgetProgram  # noqa: E402
from ig_metrics.bpf.maps import POSSIBLE_CPUS  # noqa: E402
from ig_metrics.gadgets import resolve  # noqa: E402
from ig_metrics.pipeline.sampler import Sampler  # noqa: E402
from sampler_scale import GADGET, fill  # noqa: E402

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
    """CPU time of function(), and of collecting the youngest generation of
    Python's garbage right after: a tick that holds the collector off leaves
    that collection to whatever runs next, and it is counted with the tick."""
    started = time.process_time()
    function()
    gc.collect(0)
    return time.process_time() - started


def measure(series: int, repeat: int) -> dict:
    malloc_as_run()
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
    parser.add_argument("--before", default="main",
                        help="git revision to measure side by side ('' for this checkout only)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one side's rows
    args = parser.parse_args()
    if args.json:
        print(json.dumps([measure(series, args.repeat) for series in args.series]))
        return
    revisions = revisions_for(args.before)
    sides = [*revisions, AFTER]
    rows = []
    for turn, series in enumerate(args.series):
        for side in sides if turn % 2 == 0 else sides[::-1]:     # in turn, each size
            code = code_for(side, revisions)
            out = subprocess.run([sys.executable, __file__, "--json", "--series", str(series),
                                  "--repeat", str(args.repeat)], env=environment(code),
                                 cwd="/", check=True, capture_output=True, text=True).stdout
            rows += [{"code": side, **row} for row in json.loads(out)]
    columns = [name for name in rows[0] if name not in ("code", "series")]
    print("| series | code | " + " | ".join(columns) + " |")
    print("|" + "---|" * (len(columns) + 2))
    for series in args.series:
        for side in sides:
            row = next(row for row in rows if row["series"] == series and row["code"] == side)
            print(f"| {series:,} | {side} | " + " | ".join(f"{row[name] * 1000:.1f} ms"
                                                          for name in columns) + " |")
        if len(sides) == 2:
            before, after = (next(row for row in rows if row["series"] == series
                                  and row["code"] == side) for side in sides)
            print(f"| {series:,} | before / after | " + " | ".join(
                f"{before[name] / after[name]:.2f}x" if after[name] else "–"
                for name in columns) + " |")


if __name__ == "__main__":
    main()
