"""Start-up time and memory of `ig-metrics run`, for every built-in gadget.

For each gadget, the time from launching
`ig-metrics run --gadget G --profile bench-startup --no-tui` (an OTLP/gRPC
exporter to a receiver in this process and a Prometheus exporter, both every
1 s) to:
  * the agent's log line saying the gadget is attached,
  * the first OTLP export received (the pipeline is live; the first snapshot
    holds the agent's own metrics at least),
  * the first OTLP export holding one of the gadget's own metrics,
  * the first Prometheus scrape (polled every 50 ms) answering 200 with samples;
with the agent's own account of its start (set-up, i.e. creating the exporters
and starting container attribution; compile and load; starting the exporters;
attach: the "attached" log line), and its memory after --rss-after seconds: VmRSS (of
which RssAnon and RssFile) and VmHWM, the peak, from /proc/PID/status. A light
workload (one TCP connection, one exec of /bin/true, one file open, one direct
4 KiB write and one DNS query every 100 ms) runs throughout so that every
gadget has something to count. Runs go round the gadgets in turn; medians.

Python's import time is measured apart, with `python -X importtime` (the
command line, and the modules `run` adds).

Run as root from the repository root:
    .venv/bin/python benchmarks/startup.py --runs 5 --rss-after 60
Quicker: --runs 1 --rss-after 5 --gadgets tcp
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.receivers import OtlpGrpcReceiver, free_port  # noqa: E402

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
GADGETS = ("tcp", "exec", "syscalls", "file", "blockio", "sched", "dns")
DNS_HOST = "127.53.0.2"            # not the tests' or gadget_overhead's
PROFILE = """
exporters:
  bench-otlp: {{type: otlp-grpc, endpoint: "127.0.0.1:{grpc_port}", insecure: true}}
  bench-prom: {{type: prometheus, listen: "127.0.0.1:{prom_port}"}}
profiles:
  bench-startup: {{exporters: [bench-otlp, bench-prom], interval: 1s}}
"""
# "gadget tcp attached; exporting to ... (start-up: set-up 0.25s, compile and
# load 0.48s, exporters 0.01s, attach 0.02s)" -- what the agent logs once attached.
STARTUP_LOG = re.compile(r"set-up ([\d.]+)s, compile and load ([\d.]+)s, exporters ([\d.]+)s, "
                         r"attach ([\d.]+)s")
IMPORTS = {
    "command line": "import ig_metrics.cli",
    "command line + run": "import ig_metrics.cli, ig_metrics.app.agent, "
                          "ig_metrics.ui.live, bcc",
}


# --- the light workload, in its own process -------------------------------------------
def run_ticker(stop, period: float) -> None:
    """Every `period`: a TCP connection with a few bytes each way, an exec, a
    file open, a direct 4 KiB write with fsync, and a DNS query."""
    import socket

    from tests.dns_server import A, DnsServer, ask

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            connection, _ = listener.accept()
            with connection:
                connection.recv(64)
                connection.sendall(b"pong")

    threading.Thread(target=serve, daemon=True).start()
    dns = DnsServer(DNS_HOST, {"startup.test"})
    scratch = tempfile.NamedTemporaryFile(dir="/var/tmp", prefix="ig-metrics-startup-")
    block = _aligned_block()
    query = 0
    try:
        while not stop.wait(period):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"ping")
                sock.recv(64)
            subprocess.run(["/bin/true"], check=True)
            Path("/etc/hostname").read_bytes()
            descriptor = os.open(scratch.name, os.O_WRONLY | os.O_DIRECT)
            try:
                os.pwrite(descriptor, block, 0)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            query = (query + 1) & 0xFFFF
            ask(DNS_HOST, "startup.test", A, query)
    finally:
        dns.close()
        scratch.close()


def _aligned_block() -> memoryview:
    """4 KiB at a page-aligned address, as O_DIRECT wants."""
    import mmap
    return memoryview(mmap.mmap(-1, 4096))


# --- the agent ---------------------------------------------------------------------------
class Receiver(OtlpGrpcReceiver):
    """The OTLP/gRPC receiver of the tests, noting when each export arrives and
    the names of its metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, set[str]]] = []

    def record(self, request, context):
        names = {metric.name for resource in request.resource_metrics
                 for scope in resource.scope_metrics for metric in scope.metrics}
        self.arrivals.append((time.monotonic(), names))
        return super().record(request, context)


def memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of `pid`, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def first_scrape_with_samples(url: str, started: float, done: threading.Event,
                              found: dict) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while not done.is_set():
        try:
            with opener.open(url, timeout=2) as response:
                body = response.read().decode()
            if any(line and not line.startswith("#") for line in body.splitlines()):
                found["scrape"] = time.monotonic() - started
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        done.wait(0.05)


def run_once(gadget: str, receiver: Receiver, profiles: Path, rss_after: float,
             timeout: float) -> dict:
    prom_port = free_port()
    (profiles / "bench.yaml").write_text(PROFILE.format(grpc_port=receiver.port,
                                                        prom_port=prom_port))
    receiver.arrivals.clear()
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("OTEL_") and not name.lower().endswith("_proxy")}
    started = time.monotonic()
    process = subprocess.Popen(
        [IG_METRICS, "run", "--gadget", gadget, "--profile", "bench-startup",
         "--profiles-dir", str(profiles), "--no-tui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment)
    result: dict = {"gadget": gadget}
    log: list[str] = []
    done = threading.Event()

    def read_log() -> None:
        for line in process.stderr:
            log.append(line)
            if "attached" in line and "attached" not in result:
                result["attached"] = time.monotonic() - started
                match = STARTUP_LOG.search(line)
                if match:
                    result["set_up"], result["compile"], result["exporters_start"], \
                        result["attach"] = (float(value) for value in match.groups())

    threads = [threading.Thread(target=read_log, daemon=True),
               threading.Thread(target=first_scrape_with_samples, daemon=True,
                                args=(f"http://127.0.0.1:{prom_port}/metrics", started,
                                      done, result))]
    for thread in threads:
        thread.start()
    try:
        deadline = started + timeout
        while time.monotonic() < deadline and process.poll() is None:
            arrivals = list(receiver.arrivals)
            with_data = [when for when, names in arrivals
                         if any(not name.startswith("ig_metrics.") for name in names)]
            if arrivals and with_data and "scrape" in result:
                result["export"] = arrivals[0][0] - started
                result["gadget_data"] = with_data[0] - started
                break
            time.sleep(0.02)
        else:
            raise RuntimeError(f"gadget {gadget}: no export with data within {timeout:g}s "
                               f"(exit code {process.poll()}):\n{''.join(log[-20:])}")
        time.sleep(max(0.0, started + rss_after - time.monotonic()))
        result.update(memory(process.pid))
    finally:
        done.set()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return result


# --- import time -----------------------------------------------------------------------
def import_seconds(statement: str, repeat: int) -> tuple[float, list[tuple[int, str]]]:
    """Median total of `python -X importtime -c statement` over `repeat` runs
    (the interpreter's own start-up imports included), and the modules one
    level down of the last run by cumulative time (µs)."""
    totals = []
    for _ in range(repeat):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                             capture_output=True, text=True, check=True).stderr
        rows = []
        for line in err.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
            if match:
                rows.append((int(match.group(2)), len(match.group(3)), match.group(4)))
        totals.append(sum(cumulative for cumulative, depth, _ in rows if depth == 0) / 1e6)
    heaviest = sorted(((cumulative, name) for cumulative, depth, name in rows if depth == 2),
                      reverse=True)
    return statistics.median(totals), heaviest[:8]


# --- report --------------------------------------------------------------------------------
def median(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if key in run]
    return statistics.median(values) if values else None


def show(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def report(results: dict[str, list[dict]], imports: dict, rss_after: float) -> None:
    print("\nImport time (python -X importtime, median):")
    for label, (seconds, heaviest) in imports.items():
        print(f"  {label}: {seconds:.3f} s; heaviest: " +
              ", ".join(f"{name} {cumulative / 1e3:.0f} ms" for cumulative, name in heaviest))
    print(f"\nMedians over {max(len(runs) for runs in results.values())} run(s); "
          "seconds from launch; memory in MB after "
          f"{rss_after:g} s\n")
    print("| gadget | attached | set-up | compile+load | attach | first export "
          "| first gadget data | first scrape | VmRSS | RssAnon | RssFile | VmHWM |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for gadget, runs in results.items():
        print(f"| {gadget} | {show(median(runs, 'attached'))} | "
              f"{show(median(runs, 'set_up'))} | "
              f"{show(median(runs, 'compile'))} | {show(median(runs, 'attach'))} | "
              f"{show(median(runs, 'export'))} | {show(median(runs, 'gadget_data'))} | "
              f"{show(median(runs, 'scrape'))} | {show(median(runs, 'VmRSS'), 0)} | "
              f"{show(median(runs, 'RssAnon'), 0)} | {show(median(runs, 'RssFile'), 0)} | "
              f"{show(median(runs, 'VmHWM'), 0)} |")
    tcp = results.get("tcp")
    if tcp:
        print(f"\ntcp: first export {median(tcp, 'export'):.2f} s (target < 3 s: "
              f"{median(tcp, 'export') / 3:.2f} of it)")
    worst = max(median(runs, "VmRSS") for runs in results.values())
    print(f"largest VmRSS {worst:.0f} MB (target < 120 MB: {worst / 120:.2f} of it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gadgets", nargs="+", default=list(GADGETS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rss-after", type=float, default=60.0,
                        help="seconds after launch at which memory is read (default 60)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the first export before giving up")
    parser.add_argument("--import-repeat", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent attaches BPF programs")
    imports = {label: import_seconds(statement, args.import_repeat)
               for label, statement in IMPORTS.items()}
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    ticker = context.Process(target=run_ticker, args=(stop, 0.1), daemon=True)
    ticker.start()
    receiver = Receiver()
    results: dict[str, list[dict]] = {gadget: [] for gadget in args.gadgets}
    try:
        with tempfile.TemporaryDirectory(prefix="ig-metrics-startup-") as scratch:
            for round_number in range(args.runs):
                for gadget in args.gadgets:
                    run = run_once(gadget, receiver, Path(scratch), args.rss_after,
                                   args.timeout)
                    results[gadget].append(run)
                    print(f"round {round_number + 1} {gadget}: " + ", ".join(
                        f"{key} {value:.2f}" for key, value in run.items()
                        if isinstance(value, float)), file=sys.stderr, flush=True)
    finally:
        stop.set()
        ticker.join(10)
        receiver.close()
    report(results, imports, args.rss_after)


if __name__ == "__main__":
    main()
