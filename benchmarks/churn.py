"""Memory of `ig-metrics run --gadget tcp` through a churn burst: --burst
short-lived processes (3,000 by default; --burst 30000 for the large end),
each making one TCP connection on loopback (100 bytes there, close) and
exiting, then nothing; every one of their series expires (--idle-expiry 4s,
the least that two exporter intervals of 2 s allow) and the agent's VmRSS is
compared with what it was before the burst.

The agent runs with a prometheus exporter (scraped by this process every 2 s,
which is also how the live series are counted: its `ig_metrics.series`) and an
otlp-grpc exporter sending to a sink in another process (benchmarks/
export_cost.py's), both every 2 s, --no-tui. Memory is VmRSS (and RssAnon)
from /proc/PID/status every 0.25 s: before (median over 5 s after a warm-up),
the peak during the burst, and after (median over 5 s once the series are
back to where they were, and three more intervals) and, with --later S, over
5 s another S seconds on (whether it keeps going down). "KB per live series"
is (peak - before) / (peak series - series before).

Side by side: --before REV (default main) runs the agent from that revision
of this repository (exported by `git archive`, benchmarks/revision.py), in
turn with this checkout, --rounds times; medians.

Run as root from the repository root:
    .venv/bin/python benchmarks/churn.py --burst 3000 30000 --rounds 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_cost import free_port, start_sinks  # noqa: E402
from revision import AFTER, code_for, environment, revisions_for, stop  # noqa: E402

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
INTERVAL = 2.0
IDLE_EXPIRY = "4s"
PROFILE = """
exporters:
  churn-grpc: {{type: otlp-grpc, endpoint: "127.0.0.1:{grpc_port}", insecure: true}}
  churn-prom: {{type: prometheus, listen: "127.0.0.1:{prom_port}"}}
profiles:
  bench-churn: {{exporters: [churn-grpc, churn-prom], interval: {interval}s}}
"""
PARALLEL = 64                 # processes alive at once during a burst


# --- the burst, in its own process ---------------------------------------------------------
def run_bursts(commands, replies) -> None:
    """A listener that accepts and drops connections; on each command N,
    N processes that each connect to it once, send 100 bytes and exit."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = listener.getsockname()[1]

    def accept() -> None:
        while True:
            connection, _ = listener.accept()
            connection.recv(100)
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    replies.send(port)
    while (count := commands.recv()) is not None:
        started = time.monotonic()
        alive = 0
        for _ in range(count):
            if alive >= PARALLEL:
                os.wait()
                alive -= 1
            if os.fork() == 0:
                try:
                    with socket.create_connection(("127.0.0.1", port)) as connection:
                        connection.sendall(b"c" * 100)
                finally:
                    os._exit(0)
            alive += 1
        for _ in range(alive):
            os.wait()
        replies.send(time.monotonic() - started)


# --- the agent -----------------------------------------------------------------------------
def memory(pid: int) -> dict[str, float]:
    """VmRSS and RssAnon of `pid`, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            out[name] = int(value.split()[0]) / 1024
    return out


def live_series(prom_port: int) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{prom_port}/metrics", timeout=30) as response:
        text = response.read().decode()
    match = re.search(r"^ig_metrics_series(?:\{[^}]*\})? ([\d.e+]+)$", text, re.M)
    return int(float(match.group(1))) if match else -1


class Watch:
    """VmRSS every 0.25 s and the live series every interval, in a thread."""

    def __init__(self, pid: int, prom_port: int) -> None:
        self.pid, self.prom_port = pid, prom_port
        self.samples: list[tuple[float, dict]] = []
        self.series: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_scrape = 0.0
        while not self._stop.wait(0.25):
            now = time.monotonic()
            self.samples.append((now, memory(self.pid)))
            if now >= next_scrape:
                next_scrape = now + INTERVAL
                self.series.append((now, live_series(self.prom_port)))

    def since(self, started: float, key: str = "VmRSS", *, until: float | None = None
              ) -> list[float]:
        return [sample[key] for when, sample in self.samples
                if when >= started and (until is None or when < until)]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def measure(side: str, code: Path, burst: int, args, sink_port: int, commands, replies,
            scratch: Path) -> dict:
    prom_port = free_port()
    (scratch / "churn.yaml").write_text(PROFILE.format(grpc_port=sink_port, prom_port=prom_port,
                                                       interval=INTERVAL))
    agent = subprocess.Popen(
        [IG_METRICS, "run", "--gadget", "tcp", "--profile", "bench-churn", "--profiles-dir",
         str(scratch), "--no-tui", "--idle-expiry", IDLE_EXPIRY],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=environment(code), cwd=scratch)
    threading.Thread(target=agent.stderr.read, daemon=True).start()
    try:
        time.sleep(args.warmup)
        if agent.poll() is not None:
            raise RuntimeError(f"the agent ({side}) exited with {agent.returncode}")
        watch = Watch(agent.pid, prom_port)
        time.sleep(5)
        settled = time.monotonic() - 5
        before = statistics.median(watch.since(settled))
        before_anon = statistics.median(watch.since(settled, "RssAnon"))
        series_before = statistics.median(count for when, count in watch.series)
        burst_started = time.monotonic()
        commands.send(burst)
        burst_seconds = replies.recv()
        # Until the burst's series are gone (expiry, then one more interval),
        # for at most a minute.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(INTERVAL)
            recent = [count for when, count in watch.series if when > burst_started + 1]
            if recent and recent[-1] <= series_before * 1.1 + 5 and \
                    time.monotonic() > burst_started + burst_seconds + 6:
                break
        time.sleep(3 * INTERVAL)
        settled = time.monotonic()
        time.sleep(5)
        later = None
        if args.later:             # and again, --later seconds on
            time.sleep(args.later)
            later_from = time.monotonic()
            time.sleep(5)
            later = statistics.median(watch.since(later_from))
        watch.stop()
        during = watch.since(burst_started, until=settled)
        peak_series = max(count for when, count in watch.series if when >= burst_started)
        after = statistics.median(watch.since(settled, until=settled + 5))
        return {"side": side, "burst": burst, "before": before, "peak": max(during),
                "after": after, "later": later, "before_anon": before_anon,
                "after_anon": statistics.median(watch.since(settled, "RssAnon",
                                                            until=settled + 5)),
                "series_before": series_before, "peak_series": peak_series,
                "series_after": watch.series[-1][1], "burst_seconds": burst_seconds}
    finally:
        stop(agent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, nargs="+", default=[3000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--later", type=float, default=0.0, metavar="SECONDS",
                        help="VmRSS also this long after 'after' (whether it keeps going down)")
    parser.add_argument("--before", default="main",
                        help="git revision to compare with ('' for this checkout only)")
    args = parser.parse_args()
    ours, sinks, grpc_port, _ = start_sinks()
    revisions = revisions_for(args.before)
    sides = [*revisions, AFTER]
    context = multiprocessing.get_context("spawn")
    commands, theirs = context.Pipe()
    replies, replies_theirs = context.Pipe()
    bursts = context.Process(target=run_bursts, args=(theirs, replies_theirs), daemon=True)
    bursts.start()
    replies.recv()
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="ig-metrics-churn-") as scratch:
            for round_number in range(args.rounds):
                for burst in args.burst:
                    order = sides if round_number % 2 == 0 else sides[::-1]
                    for side in order:
                        run = measure(side, code_for(side, revisions), burst, args, grpc_port,
                                      commands, replies, Path(scratch))
                        runs.append(run)
                        print(f"round {round_number + 1} {side} burst {burst}: VmRSS "
                              f"{run['before']:.1f} -> peak {run['peak']:.1f} -> "
                              f"{run['after']:.1f}"
                              + (f" -> {run['later']:.1f} {args.later:g}s later"
                                 if run["later"] is not None else "")
                              + f" MB; series {run['series_before']:.0f} -> "
                              f"{run['peak_series']} -> {run['series_after']}; burst took "
                              f"{run['burst_seconds']:.1f}s", file=sys.stderr, flush=True)
    finally:
        commands.send(None)
        ours.send(None)
        sinks.join(10)
        bursts.join(10)
    report(runs, sides, args)


def report(runs: list[dict], sides: list[str], args) -> None:
    print(f"\n{args.rounds} round(s); MB, medians\n")
    later = f" {args.later:g} s later | later - before |" if args.later else ""
    print("| burst | code | VmRSS before | peak | after | after - before |" + later
          + " RssAnon before | after | series before | peak | after | KB per live series |")
    print("|---|---|---|---|---|---|" + "---|---|" * bool(args.later) + "---|---|---|---|---|---|")
    for burst in args.burst:
        for side in sides:
            mine = [run for run in runs if run["side"] == side and run["burst"] == burst]

            def median(name: str, mine: list[dict] = mine) -> float:
                return statistics.median(run[name] for run in mine)

            per_series = statistics.median(
                (run["peak"] - run["before"]) / max(1, run["peak_series"] - run["series_before"])
                for run in mine)
            print(f"| {burst:,} | {side} | {median('before'):.1f} | {median('peak'):.1f} | "
                  f"{median('after'):.1f} | **{median('after') - median('before'):+.1f}** | "
                  + (f"{median('later'):.1f} | **{median('later') - median('before'):+.1f}** | "
                     if args.later else "")
                  + f"{median('before_anon'):.1f} | {median('after_anon'):.1f} | "
                  f"{median('series_before'):,.0f} | {median('peak_series'):,.0f} | "
                  f"{median('series_after'):,.0f} | {per_series * 1024:.2f} KB |")
    print("\nEvery run: " + "; ".join(
        f"{run['side']} {run['burst']}: {run['before']:.1f}/{run['peak']:.1f}/{run['after']:.1f}"
        for run in runs))


if __name__ == "__main__":
    main()
