"""What the default attributes cost when short-lived processes come and go:
`ig-metrics run --gadget tcp --no-tui --interval 1s` with one prometheus
exporter and a profile without `attributes:` (each side's default), while
--processes `curl` processes (300 by default, --parallel at a time) each make
one HTTP request to a local server and exit. The server and the curls run in
a cgroup of their own, and the agent with `--cgroup` on it: other traffic of
the machine (a shared one) is not counted.

Measured per run: on one scrape taken once the agent has read them all, the
series (sample lines of the exposition; those with a process_pid label; those
of tcp_ metrics) and the exposition's bytes; the agent's CPU (utime + stime
of /proc/PID/stat, all its threads) over the workload (from the first curl to
three intervals after the last) and over a --rest window after it, while this
process scrapes every --scrape-every seconds throughout (by default at the
agent's interval: every scrape renders a new reading), as a Prometheus server
would; and its VmRSS at the end. The series stay exported through the
rest window (the idle expiry is the default 10 minutes).

Side by side: --before REV (default main) runs the agent from that revision
of this repository (benchmarks/revision.py), in turn with this checkout,
--rounds times, the order alternating; medians, and before / after ratios.

Run as root from the repository root:
    .venv/bin/python benchmarks/cardinality.py --processes 300 --rounds 3 --before main
"""

from __future__ import annotations

import argparse
import http.server
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_cost import free_port  # noqa: E402
from revision import AFTER, code_for, environment, revisions_for, stop  # noqa: E402

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
INTERVAL = 1.0
SETTLE = 3 * INTERVAL          # after the last curl: the agent has read and exported it
PROFILE = """
exporters:
  card-prom: {{type: prometheus, listen: "127.0.0.1:{port}"}}
profiles:
  bench-card: {{exporters: [card-prom], interval: {interval}s}}
"""
TICKS = os.sysconf("SC_CLK_TCK")


# --- the server the curls ask, in its own process ------------------------------------------
class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        """Quiet: a line per request would be the benchmark's output."""


def run_workload(cgroup: Path, commands, replies) -> None:
    """In `cgroup` (the curls it starts too): the server, then on each
    command N, N curls; replies the port, then the seconds each burst took."""
    (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    replies.send(port)
    while (command := commands.recv()) is not None:
        replies.send(run_curls(*command, port))


def run_curls(count: int, parallel: int, port: int) -> float:
    """`count` curl processes, at most `parallel` alive at once; seconds taken."""
    started = time.monotonic()
    alive: list[subprocess.Popen] = []
    for _ in range(count):
        while len(alive) >= parallel:
            alive.pop(0).wait()
        alive.append(subprocess.Popen(["curl", "-s", "-o", "/dev/null",
                                       f"http://127.0.0.1:{port}/"]))
    for process in alive:
        process.wait()
    return time.monotonic() - started


# --- the agent -----------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def vmrss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return response.read()


def wait_for_endpoint(agent: subprocess.Popen, port: int, timeout: float = 120) -> None:
    """Until the agent answers a scrape with its gadget's series (attached)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise RuntimeError(f"the agent exited with {agent.returncode}")
        try:
            if b"ig_metrics_series" in scrape(port):
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise RuntimeError("the agent served no metrics in time")


class Scraper:
    """A scrape every `every` seconds, in a thread, as a Prometheus server."""

    def __init__(self, port: int, every: float) -> None:
        self.port, self.every = port, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            scrape(self.port)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def series_of(text: str) -> dict[str, int]:
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    return {"series": len(samples),
            "with_pid": sum('process_pid="' in line for line in samples),
            "tcp": sum(line.startswith("tcp_") for line in samples)}


def cgroup2_root() -> Path:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    sys.exit("needs a cgroup v2 mount: the workload runs in a cgroup of its own")


def measure(side: str, code: Path, args, workload: tuple, scratch: Path) -> dict:
    cgroup, commands, replies = workload
    port = free_port()
    (scratch / "card.yaml").write_text(PROFILE.format(port=port, interval=INTERVAL))
    agent = subprocess.Popen(
        [IG_METRICS, "run", "--gadget", "tcp", "--profile", "bench-card", "--profiles-dir",
         str(scratch), "--no-tui", "--interval", f"{INTERVAL:g}s", "--cgroup", str(cgroup)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=environment(code), cwd=scratch)
    threading.Thread(target=agent.stderr.read, daemon=True).start()
    try:
        wait_for_endpoint(agent, port)
        time.sleep(args.warmup)
        scraper = Scraper(port, args.scrape_every)
        cpu_before = cpu_seconds(agent.pid)
        started = time.monotonic()
        commands.send((args.processes, args.parallel))
        curls_took = replies.recv()
        time.sleep(SETTLE)
        workload = time.monotonic() - started
        cpu_workload = cpu_seconds(agent.pid) - cpu_before
        body = scrape(port)                       # the scrape measured
        rest_from, cpu_rest_from = time.monotonic(), cpu_seconds(agent.pid)
        time.sleep(args.rest)
        cpu_rest = cpu_seconds(agent.pid) - cpu_rest_from
        rest = time.monotonic() - rest_from
        scraper.stop()
        return {"side": side, **series_of(body.decode()), "bytes": len(body),
                "cpu_workload": cpu_workload, "workload": workload,
                "cpu_workload_share": cpu_workload / workload,
                "cpu_rest_share": cpu_rest / rest, "rss": vmrss_mb(agent.pid),
                "curls_took": curls_took}
    finally:
        stop(agent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=8, help="curls alive at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds once attached")
    parser.add_argument("--rest", type=float, default=20.0, help="seconds after the workload")
    parser.add_argument("--scrape-every", type=float, default=INTERVAL)
    parser.add_argument("--before", default="main",
                        help="git revision to compare with ('' for this checkout only)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent attaches BPF programs")
    if shutil.which("curl") is None:
        sys.exit("needs curl (Debian package curl): the short-lived processes are curls")
    revisions = revisions_for(args.before)
    sides = [*revisions, AFTER]
    cgroup = cgroup2_root() / f"igm-cardinality-{os.getpid()}"
    cgroup.mkdir()
    context = multiprocessing.get_context("spawn")
    commands, commands_theirs = context.Pipe()
    replies, replies_theirs = context.Pipe()
    workload = context.Process(target=run_workload,
                               args=(cgroup, commands_theirs, replies_theirs), daemon=True)
    workload.start()
    replies.recv()
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="ig-metrics-cardinality-") as scratch:
            for round_number in range(args.rounds):
                order = sides if round_number % 2 == 0 else sides[::-1]
                for side in order:
                    run = measure(side, code_for(side, revisions), args,
                                  (cgroup, commands, replies), Path(scratch))
                    runs.append(run)
                    print(f"round {round_number + 1} {side}: {run['series']:,} series "
                          f"({run['with_pid']:,} with process_pid), {run['bytes']:,} bytes; "
                          f"CPU {run['cpu_workload']:.2f} s over {run['workload']:.1f} s "
                          f"({run['cpu_workload_share']:.1%}), rest "
                          f"{run['cpu_rest_share']:.1%}; VmRSS {run['rss']:.1f} MB; curls took "
                          f"{run['curls_took']:.1f} s", file=sys.stderr, flush=True)
    finally:
        commands.send(None)
        workload.join(10)
        cgroup.rmdir()
    report(runs, sides, args)


def report(runs: list[dict], sides: list[str], args) -> None:
    def median(side: str, name: str) -> float:
        return statistics.median(run[name] for run in runs if run["side"] == side)

    print(f"\n{args.processes} curl processes ({args.parallel} at a time), {args.rounds} "
          f"round(s), medians; CPU in % of one core\n")
    print("| code | series | with process_pid | tcp_ series | exposition bytes | "
          "agent CPU, workload | agent CPU, rest | VmRSS |")
    print("|---|---|---|---|---|---|---|---|")
    for side in sides:
        print(f"| {side} | {median(side, 'series'):,.0f} | {median(side, 'with_pid'):,.0f} | "
              f"{median(side, 'tcp'):,.0f} | {median(side, 'bytes'):,.0f} | "
              f"{median(side, 'cpu_workload_share'):.1%} "
              f"({median(side, 'cpu_workload'):.2f} s) | "
              f"{median(side, 'cpu_rest_share'):.1%} | {median(side, 'rss'):.1f} MB |")
    if len(sides) == 2:
        before, after = sides

        def ratio(name: str) -> str:
            return f"{median(before, name) / max(median(after, name), 1e-9):.1f}×"

        print(f"| before / after | {ratio('series')} | – | {ratio('tcp')} | {ratio('bytes')} | "
              f"{ratio('cpu_workload')} | {ratio('cpu_rest_share')} | {ratio('rss')} |")
    print("\nEvery run: " + "; ".join(
        f"{run['side']}: {run['series']} series, {run['bytes']} B, "
        f"{run['cpu_workload_share']:.1%}/{run['cpu_rest_share']:.1%}" for run in runs))


if __name__ == "__main__":
    main()
