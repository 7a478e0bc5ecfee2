"""What the live table costs once a second, taken apart:
the tcp gadget attached, benchmarks/steady_state.py's workload (~1,000 series,
every one changing every second), and in this process, once a second, what
`ig-metrics run` does with the table on: one sampler tick, then one table
update (its rows, their layout, Rich's draw to a 200-column terminal, here a
string). CPU time (time.process_time) of each, medians over --seconds after a
warm-up. Without the table the sampler ticks once per exporter interval, so
the table adds about (1 - 1/interval) ticks and one update per second: the
last column, as a share of one core (10 s intervals).

steady_state.py measures the whole agent process (exporters, threads, the
terminal's writes) and is the target's figure; this one says where it goes.

Side by side: --before REV measures that revision too (benchmarks/
revision.py), in turn with this checkout.

Run as root from the repository root:
    .venv/bin/python benchmarks/live_table_cost.py --seconds 30 --before main
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revision import AFTER, code_for, environment, malloc_as_run, revisions_for, use_code  # noqa: E402

use_code()

from steady_state import run_workload  # noqa: E402

INTERVAL = 10.0                    # the exporters' interval the table is compared with
WARMUP = 8                         # ticks before measuring (the flows all seen)


def measure(seconds: int, peers: int, ports: int) -> dict:
    from rich.console import Console

    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler
    from ig_metrics.ui import live

    malloc_as_run()
    parent, child = multiprocessing.Pipe()
    workload = multiprocessing.Process(target=run_workload, args=(peers, ports, child),
                                       daemon=True)
    workload.start()
    parent.recv()
    spent: dict[str, list[float]] = {"sampler tick": [], "table update": [], "rows": [],
                                     "layout": []}

    def timed(name, function):
        def call(*args, **kwargs):
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name].append(time.process_time() - started)
        return call

    # The rows (summary/rows.py) and the layout (ui/layout.py), as the view calls them.
    live.gadget_table = timed("rows", live.gadget_table)
    live.table_lines = timed("layout", live.table_lines)
    spec = resolve("tcp")
    program = GadgetProgram(spec)
    program.load()
    try:
        program.attach()
        sampler = Sampler(spec, program, resource=())
        console = Console(file=io.StringIO(), width=200, height=50, force_terminal=True)
        view = live.LiveView(spec, top=20, sort=spec.table.sort, title="ig-metrics · tcp",
                             console=console)
        gc.collect()
        gc.freeze()                    # as `run` does once started
        series = 0
        with view:
            for tick in range(WARMUP + seconds):
                time.sleep(1.0)
                started = time.process_time()
                snapshot = sampler.tick()
                tick_cpu = time.process_time() - started
                started = time.process_time()
                view.update(snapshot, [])
                update_cpu = time.process_time() - started
                if tick < WARMUP:
                    for values in spent.values():
                        values.clear()
                    continue
                spent["sampler tick"].append(tick_cpu)
                spent["table update"].append(update_cpu)
                series = max(series, snapshot.point_count)
    finally:
        program.close()
        workload.terminate()
    row = {name: statistics.median(values) for name, values in spent.items()}
    row["Rich draw"] = row["table update"] - row["rows"] - row["layout"]
    row["series"] = series
    row["added % of a core"] = 100 * ((1 - 1 / INTERVAL) * row["sampler tick"]
                                      + row["table update"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--peers", type=int, default=9)
    parser.add_argument("--ports", type=int, default=10)
    parser.add_argument("--before", default="",
                        help="git revision to measure side by side ('' for this checkout only)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one side's row
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.seconds, args.peers, args.ports)))
        return
    revisions = revisions_for(args.before)
    rows = []
    for side in [*revisions, AFTER]:
        out = subprocess.run([sys.executable, __file__, "--json", "--seconds", str(args.seconds),
                              "--peers", str(args.peers), "--ports", str(args.ports)],
                             env=environment(code_for(side, revisions)), cwd="/", check=True,
                             capture_output=True, text=True).stdout
        rows.append({"code": side, **json.loads(out.strip().splitlines()[-1])})
    columns = ["sampler tick", "table update", "rows", "layout", "Rich draw"]
    print(f"{args.seconds} one-second ticks after {WARMUP} of warm-up; CPU ms, medians\n")
    print("| code | series | " + " | ".join(columns) + " | added % of a core |")
    print("|---|---|" + "---|" * len(columns) + "---|")
    for row in rows:
        print(f"| {row['code']} | {row['series']:,} | "
              + " | ".join(f"{row[name] * 1000:.2f}" for name in columns)
              + f" | {row['added % of a core']:.2f} |")


if __name__ == "__main__":
    main()
