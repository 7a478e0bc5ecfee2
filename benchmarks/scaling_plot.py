"""CPU per export interval against the number of series (1k to 100k) and of
exporters (1, 3, 5), plotted to docs/performance-scaling.png.

The measurement is benchmarks/export_cost.py's, imported from it: the real
sampler reading a real BPF map filled with N series, the real exporters
sending to sinks in another process, process CPU time around each step,
medians over the intervals after a warm-up one. The raw figures are also
written as JSON (--json), and --replot JSON draws a plot again without
measuring.

Needs matplotlib, which ig-metrics itself does not (the `bench` extra):
    .venv/bin/pip install -e '.[bench]'
Run as root from the repository root:
    .venv/bin/python benchmarks/scaling_plot.py --intervals 3
Quick check at small sizes:
    .venv/bin/python benchmarks/scaling_plot.py --series 1000 3000 --intervals 1 \\
        --output /tmp/scaling.png --json /tmp/scaling.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_cost import ROOT, measure, start_sinks  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "performance-scaling.png"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "scaling.json"
INTERVAL_SECONDS = 10.0          # the default export interval: ms per interval -> % of a core
INSTALL_HINT = ("this plot needs matplotlib, which ig-metrics does not: "
                ".venv/bin/pip install -e '.[bench]' (or .venv/bin/pip install matplotlib)")


def pyplot():
    try:
        import matplotlib
    except ImportError:
        sys.exit(INSTALL_HINT)
    matplotlib.use("Agg")
    import matplotlib.pyplot
    return matplotlib.pyplot


def machine() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs ({model}), kernel {platform.release()}"


def collect(args) -> dict:
    ours, sinks, grpc_port, http_port = start_sinks()
    rows: list[dict] = []
    try:
        for series in args.series:
            rows += measure(series, args.exporters, args.intervals, ours, grpc_port, http_port)
    finally:
        ours.send(None)
        sinks.join(10)
    return {"rows": rows, "machine": machine(), "date": datetime.date.today().isoformat(),
            "intervals": args.intervals, "command": " ".join(["python", *sys.argv])}


def plot(data: dict, output: Path) -> None:
    plt = pyplot()
    rows = data["rows"]
    counts = sorted({row["exporters"] for row in rows})
    sizes = sorted({row["series"] for row in rows})
    figure, (cpu_axis, unit_axis) = plt.subplots(1, 2, figsize=(12, 4.8))
    for count in counts:
        mine = sorted((row for row in rows if row["exporters"] == count),
                      key=lambda row: row["series"])
        series = [row["series"] for row in mine]
        total_ms = [(row["sampler"] + row["exporters_cpu"]) * 1e3 for row in mine]
        label = f"{count} exporter{'s' if count > 1 else ''}: sampler + exporters"
        cpu_axis.plot(series, total_ms, marker="o", label=label)
        unit_axis.plot(series, [ms * 1e3 / n for ms, n in zip(total_ms, series)], marker="o",
                       label=label)
    sampler_ms = [statistics.median(row["sampler"] for row in rows if row["series"] == size)
                  * 1e3 for size in sizes]
    cpu_axis.plot(sizes, sampler_ms, linestyle="--", color="grey", marker=".",
                  label="sampler alone")
    unit_axis.plot(sizes, [ms * 1e3 / n for ms, n in zip(sampler_ms, sizes)], linestyle="--",
                   color="grey", marker=".", label="sampler alone")
    one_percent_ms = INTERVAL_SECONDS * 1e3 / 100
    cpu_axis.axhline(one_percent_ms, color="black", linewidth=0.7, linestyle=":")
    cpu_axis.annotate(f"1% of a core at {INTERVAL_SECONDS:g} s", (sizes[0], one_percent_ms),
                      textcoords="offset points", xytext=(0, 4), fontsize=8)
    cpu_axis.set(xscale="log", yscale="log", xlabel="series (2 data points each)",
                 ylabel="CPU ms per export interval", title="CPU per interval")
    share = cpu_axis.secondary_yaxis(
        "right", functions=(lambda ms: ms / (INTERVAL_SECONDS * 10),
                            lambda percent: percent * INTERVAL_SECONDS * 10))
    share.set_ylabel(f"% of one core at a {INTERVAL_SECONDS:g} s interval")
    unit_axis.set(xscale="log", xlabel="series (2 data points each)",
                  ylabel="CPU µs per series per interval", title="CPU per series")
    unit_axis.set_ylim(bottom=0)
    for axis in (cpu_axis, unit_axis):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("ig-metrics export cost (benchmarks/export_cost.py measurement)")
    figure.text(0.01, 0.01, f"{data['machine']}; {data['date']}; medians of "
                f"{data['intervals']} interval(s); {data['command']}", fontsize=7)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    print(f"wrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, nargs="+",
                        default=[1000, 3000, 10_000, 30_000, 100_000])
    parser.add_argument("--exporters", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--intervals", type=int, default=3,
                        help="measured intervals per point, after a warm-up one")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"where the raw figures go (default {DEFAULT_JSON.relative_to(ROOT)})")
    parser.add_argument("--replot", type=Path, metavar="JSON",
                        help="plot these figures again instead of measuring")
    args = parser.parse_args()
    pyplot()                                   # before a long run: say now if it is missing
    if args.replot:
        plot(json.loads(args.replot.read_text()), args.output)
        return
    data = collect(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2))
    print(f"wrote {args.json}")
    plot(data, args.output)


if __name__ == "__main__":
    main()
