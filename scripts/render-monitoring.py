"""Draws the pictures of docs/monitoring.md: the data of the dashboards'
important panels from a real run, as the real Prometheus answered their
queries (query_range). They are renderings of the queries with matplotlib,
not Grafana screenshots (Grafana is not available on these machines).

The run is tests/test_mixin_prometheus.py's (the tcp gadget with a known
workload, Prometheus 2.42 scraping it, the recording rules loaded, a second
one with native histograms answering the native queries, an OTLP
exporter sending nowhere so that the health panels show failures and drops);
it writes what it queried to a capture file, which this script draws.

Needs matplotlib (the `bench` extra) and, to run the test, root and BPF:
    .venv/bin/pip install -e '.[test,bench]'
    .venv/bin/python scripts/render-monitoring.py              # run, then draw
    .venv/bin/python scripts/render-monitoring.py --capture /tmp/capture.json  # draw only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# picture -> (dashboard uid, the titles of the panels it shows)
PICTURES = {
    "monitoring-tcp.png": ("ig-metrics-tcp", (
        "tcp.sent per second by process_command",
        "tcp.received per second by process_command",
        "tcp.connections.opened per second by process_command",
        "tcp.connect.duration quantiles",
        "tcp.connect.duration distribution",
        "tcp.connection.duration p99 by process_command")),
    "monitoring-overview.png": ("ig-metrics-overview", (
        "tcp: tcp.sent per second by node",
        "tcp: tcp.received per second by node",
        "tcp: tcp.connect.duration p99 by node",
        "Series per node")),
    "monitoring-health.png": ("ig-metrics-health", (
        "Exporters by state",
        "Export attempts per second by outcome",
        "Export failures per second by error",
        "Export duration p50 / p99",
        "Queue depth",
        "Points dropped per second by reason",
        "Points folded into overflow per second",
        "BPF map fill",
        "Sampler reading time and interval")),
}


# Panels the dashboards stack (Grafana's stacking "normal").
STACKED = {"Exporters by state"}


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda match: labels.get(match[1], ""),
                  template).strip() or "value"


def draw_lines(axes, targets: list[dict], start: float) -> None:
    for target in targets:
        for series in target["result"]:
            times = [float(t) - start for t, _ in series["values"]]
            values = [float(v) for _, v in series["values"]]
            # A series of one sample (a state held for one scrape) shows as a dot.
            axes.plot(times, values, marker="." if len(values) == 1 else None,
                      label=legend(target["legend"], series["metric"]))
    if axes.lines:
        axes.legend(fontsize=6, loc="upper left")


def draw_stacked(axes, targets: list[dict], start: float) -> None:
    found = [series for target in targets for series in target["result"]]
    times = sorted({float(t) for series in found for t, _ in series["values"]})
    rows = [[dict((float(t), float(v)) for t, v in series["values"]).get(time, 0.0)
             for time in times] for series in found]
    labels = [legend(targets[0]["legend"], series["metric"]) for series in found]
    if rows:
        axes.stackplot([time - start for time in times], rows, labels=labels, step="post")
        axes.legend(fontsize=6, loc="upper left")


def draw_heatmap(axes, targets: list[dict], start: float) -> None:
    buckets = [series for target in targets for series in target["result"]
               if "le" in series["metric"]]
    buckets.sort(key=lambda series: float(series["metric"]["le"]))
    if not buckets:
        return
    times = [float(t) - start for t, _ in buckets[0]["values"]]
    # Cumulative buckets -> the count in each bucket alone.
    cumulative = [[float(v) for _, v in series["values"]] for series in buckets]
    rows = [cumulative[0]] + [[high - low for high, low in zip(upper, lower)]
                              for lower, upper in zip(cumulative, cumulative[1:])]
    used = [index for index, row in enumerate(rows) if any(row)]
    low, high = (used[0], used[-1]) if used else (0, len(rows) - 1)
    axes.imshow(rows[low:high + 1], aspect="auto", origin="lower", cmap="Oranges",
                extent=(times[0], times[-1], low - 0.5, high + 0.5))
    axes.set_yticks(range(low, high + 1))
    axes.set_yticklabels([buckets[index]["metric"]["le"] for index in range(low, high + 1)],
                         fontsize=6)
    axes.set_ylabel("le (upper bound)", fontsize=7)


def render(capture: dict, picture: str, uid: str, titles: tuple[str, ...]) -> Path:
    panels = capture["dashboards"][uid]
    columns = 3 if len(titles) > 4 else 2
    rows = -(-len(titles) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.0 * rows),
                                squeeze=False)
    for axes in grid.flat[len(titles):]:
        axes.axis("off")
    for axes, title in zip(grid.flat, titles):
        targets = panels[title]
        if "distribution" in title:
            draw_heatmap(axes, targets, capture["start"])
        elif title in STACKED:
            draw_stacked(axes, targets, capture["start"])
        else:
            draw_lines(axes, targets, capture["start"])
        axes.set_title(title, fontsize=8)
        axes.set_xlabel("seconds into the run", fontsize=7)
        axes.tick_params(labelsize=6)
    figure.suptitle(f"{uid}: query_range results of the real Prometheus after a real run "
                    "(rendered with matplotlib, not a Grafana screenshot)", fontsize=9)
    figure.tight_layout()
    path = DOCS / picture
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def capture_run(path: Path) -> None:
    """The test's real run, writing what it queried to `path`."""
    environment = {**os.environ, "IG_METRICS_MIXIN_CAPTURE": str(path)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "tests/test_mixin_prometheus.py::"
                    "test_every_panel_returns_data_after_a_real_tcp_run"],
                   cwd=ROOT, env=environment, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", type=Path,
                        help="draw from this capture file instead of running the test")
    args = parser.parse_args()
    capture_file = args.capture
    if capture_file is None:
        capture_file = Path(tempfile.mkdtemp(prefix=f"igm-render-{os.getpid()}-")) / "c.json"
        capture_run(capture_file)
    capture = json.loads(capture_file.read_text())
    for picture, (uid, titles) in PICTURES.items():
        print(render(capture, picture, uid, titles))


if __name__ == "__main__":
    main()
