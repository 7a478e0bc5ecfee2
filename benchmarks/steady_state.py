"""Steady-state CPU of `ig-metrics run` with about a thousand live series and
three exporters every 10 s, without and with the live table.

The gadget is tcp. A workload process keeps PEERS x PORTS connection targets
busy on loopback: a listener on each of 127.0.0.2.. (one address per peer) and
each of PORTS ports, and one short connection per target and second (connect
from the target's own address, 100 bytes there, 200 back, close), so that
every series changes at every interval. Each target makes an outbound and an
inbound flow, about 11 series between them (bytes, connections opened and
closed, connect and connection-duration histograms); the default 9 x 10
targets make ~1,000 series with the agent's own metrics (the
`ig_metrics.series` it exports, read from a scrape at the end).

The agent is `ig-metrics run --gadget tcp --profile bench-steady` with an
otlp-grpc, an otlp-http (both to sinks in another process that discard what
they get: benchmarks/export_cost.py's) and a prometheus exporter (scraped by
that process every 10 s), all at 10 s, defaults otherwise:
  * no-tui: `--no-tui` (one log line per interval);
  * tui: the live table (`--top 20`, redrawn twice a second) on a
    pseudo-terminal of 200x50 whose output is read and discarded.
After a warm-up, the CPU time of the agent process (utime + stime of every
thread, and of waited-for children: /proc/PID/stat) over --seconds, as a share
of one core. Nothing is subtracted; the workload's and the sinks' CPU are
reported apart. Rounds alternate the modes; medians.

Run as root from the repository root:
    .venv/bin/python benchmarks/steady_state.py --rounds 3 --seconds 60
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import os
import pty
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_cost import free_port, start_sinks  # noqa: E402
from revision import AFTER, ROOT, code_for, revisions_for  # noqa: E402
from revision import environment as code_environment

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
TARGETS = {"no-tui": 1.0, "tui": 4.0}            # % of one core
INTERVAL = "10s"
PROFILE = """
exporters:
  steady-grpc: {{type: otlp-grpc, endpoint: "127.0.0.1:{grpc_port}", insecure: true}}
  steady-http: {{type: otlp-http, endpoint: "http://127.0.0.1:{http_port}/v1/metrics"}}
  steady-prom: {{type: prometheus, listen: "127.0.0.1:{prom_port}"}}
profiles:
  bench-steady: {{exporters: [steady-grpc, steady-http, steady-prom], interval: {interval}}}
"""
TERMINAL_SIZE = (50, 200)                        # rows, columns
REQUEST, REPLY = b"q" * 100, b"r" * 200


# --- the workload, in its own process ------------------------------------------------------
def run_workload(peers: int, ports: int, ready) -> None:
    """Listeners on 127.0.0.(2+k):port for every peer k and port; one connection
    per (peer, port) per second, from the peer's address, for ever."""
    import selectors

    first = socket.create_server(("127.0.0.2", 0))
    numbers = [first.getsockname()[1]]
    listeners = [first]
    while len(numbers) < ports:
        listener = socket.create_server(("127.0.0.2", 0))
        numbers.append(listener.getsockname()[1])
        listeners.append(listener)
    for peer in range(1, peers):
        for port in numbers:
            listeners.append(socket.create_server((f"127.0.0.{2 + peer}", port)))
    selector = selectors.DefaultSelector()
    for listener in listeners:
        selector.register(listener, selectors.EVENT_READ)

    def serve() -> None:
        while True:
            for key, _ in selector.select():
                connection, _ = key.fileobj.accept()
                with connection:
                    connection.recv(len(REQUEST))
                    connection.sendall(REPLY)

    threading.Thread(target=serve, daemon=True).start()
    targets = [(f"127.0.0.{2 + peer}", port) for peer in range(peers) for port in numbers]
    ready.send(len(targets))
    spacing = 1.0 / len(targets)
    next_at = time.monotonic()
    while True:
        for address, port in targets:
            with socket.socket() as sock:
                sock.bind((address, 0))
                sock.connect((address, port))
                sock.sendall(REQUEST)
                while sock.recv(4096):
                    pass
            next_at += spacing
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)


# --- the agent --------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Agent:
    """`ig-metrics run` in one of the two modes; its output is drained."""

    def __init__(self, mode: str, profiles: Path, top: int, code: Path = ROOT) -> None:
        command = [IG_METRICS, "run", "--gadget", "tcp", "--profile", "bench-steady",
                   "--profiles-dir", str(profiles)]
        environment = code_environment(code)
        self.output_bytes = 0
        if mode == "no-tui":
            self.process = subprocess.Popen([*command, "--no-tui"], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            env=environment, cwd=profiles)
            self._output = self.process.stderr.fileno()
        else:
            controller, terminal = pty.openpty()
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", *TERMINAL_SIZE, 0, 0))
            environment["TERM"] = "xterm-256color"
            self.process = subprocess.Popen([*command, "--top", str(top)], stdin=terminal,
                                            stdout=terminal, stderr=terminal, env=environment,
                                            start_new_session=True, cwd=profiles)
            os.close(terminal)
            self._output = controller
        self.pid = self.process.pid
        self.tail = b""
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._output, 65536)
            except OSError:              # the terminal's other end closed
                return
            if not chunk:
                return
            self.output_bytes += len(chunk)
            self.tail = (self.tail + chunk)[-4096:]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def scrape(prom_port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{prom_port}/metrics", timeout=30) as response:
        return response.read().decode()


def series_counts(text: str) -> tuple[int, int]:
    """(data points the agent exports, i.e. its ig_metrics.series gauge; distinct
    tcp flows, i.e. label sets of the tcp metrics) from a Prometheus scrape."""
    match = re.search(r"^ig_metrics_series(?:\{[^}]*\})? ([\d.e+]+)$", text, re.M)
    points = int(float(match.group(1))) if match else -1
    flows = set()
    for line in text.splitlines():
        if line.startswith("tcp_"):
            labels = re.sub(r'le="[^"]*",?', "", line.partition("{")[2].rpartition("}")[0])
            flows.add(labels)
    return points, len(flows)


def measure(mode: str, args, sinks, ports: tuple[int, int], workload_pid: int,
            sinks_pid: int, scratch: Path, side: str = AFTER, code: Path = ROOT) -> dict:
    prom_port = free_port()
    (scratch / "bench.yaml").write_text(PROFILE.format(
        grpc_port=ports[0], http_port=ports[1], prom_port=prom_port, interval=INTERVAL))
    agent = Agent(mode, scratch, args.top, code)
    stop_scraping = threading.Event()

    def scraper() -> None:             # in the sinks' process: its CPU is not the agent's
        while not stop_scraping.wait(10.0):
            sinks.send(f"http://127.0.0.1:{prom_port}/metrics")
            sinks.recv()

    thread = threading.Thread(target=scraper, daemon=True)
    try:
        time.sleep(args.warmup)
        if agent.process.poll() is not None:
            raise RuntimeError(f"the agent exited ({agent.process.returncode}): "
                               f"{agent.tail.decode(errors='replace')}")
        thread.start()
        before = {pid: cpu_seconds(pid) for pid in (agent.pid, workload_pid, sinks_pid)}
        written = agent.output_bytes
        started = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - started
        after = {pid: cpu_seconds(pid) for pid in (agent.pid, workload_pid, sinks_pid)}
        written = agent.output_bytes - written
        stop_scraping.set()
        thread.join(30)
        points, flows = series_counts(scrape(prom_port))
    finally:
        stop_scraping.set()
        agent.stop()
    share = {pid: 100 * (after[pid] - before[pid]) / elapsed for pid in before}
    return {"mode": mode, "side": side, "agent": share[agent.pid], "workload": share[workload_pid],
            "sinks": share[sinks_pid], "points": points, "flows": flows,
            "output_kb_s": written / elapsed / 1024, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of each measurement (default 60)")
    parser.add_argument("--warmup", type=float, default=25.0,
                        help="seconds from launch before measuring (default 25)")
    parser.add_argument("--modes", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--peers", type=int, default=9)
    parser.add_argument("--ports", type=int, default=10)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--before", default="",
                        help="git revision to run side by side with this checkout (e.g. main)")
    args = parser.parse_args()
    revisions = revisions_for(args.before)
    args.sides = [*revisions, AFTER]
    ours, sinks, *sink_ports = start_sinks()
    context = multiprocessing.get_context("spawn")
    ready, ready_theirs = context.Pipe()
    workload = context.Process(target=run_workload, args=(args.peers, args.ports, ready_theirs),
                               daemon=True)
    workload.start()
    targets = ready.recv()
    print(f"workload: {targets} connection targets, one connection each per second",
          file=sys.stderr, flush=True)
    runs: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ig-metrics-steady-") as scratch:
            for round_number in range(args.rounds):
                modes = args.modes if round_number % 2 == 0 else args.modes[::-1]
                for mode, side in [(mode, side) for mode in modes for side in
                                   (args.sides if round_number % 2 == 0 else args.sides[::-1])]:
                    run = measure(mode, args, ours, sink_ports, workload.pid, sinks.pid,
                                  Path(scratch), side, code_for(side, revisions))
                    runs.append(run)
                    print(f"round {round_number + 1} {side} {mode}: agent {run['agent']:.2f}%, "
                          f"workload {run['workload']:.2f}%, sinks {run['sinks']:.2f}%, "
                          f"{run['points']} series ({run['flows']} flows), terminal "
                          f"{run['output_kb_s']:.1f} KB/s", file=sys.stderr, flush=True)
    finally:
        ours.send(None)
        sinks.join(10)
        workload.kill()
    report(runs, args)


def report(runs: list[dict], args) -> None:
    print(f"\n{args.rounds} round(s) of {args.seconds:g} s after a {args.warmup:g} s warm-up; "
          "CPU as % of one core (medians)\n")
    print("| code | mode | agent CPU % | target | ratio | series (flows) | workload CPU % "
          "| sinks + scraper CPU % | terminal output KB/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for side, mode in [(side, mode) for side in args.sides for mode in args.modes]:
        mine = [run for run in runs if run["mode"] == mode and run["side"] == side]
        agent = statistics.median(run["agent"] for run in mine)
        print(f"| {side} | {mode} | {agent:.2f} | < {TARGETS[mode]:g} | {agent / TARGETS[mode]:.2f} | "
              f"{statistics.median(run['points'] for run in mine):,.0f} "
              f"({statistics.median(run['flows'] for run in mine):,.0f}) | "
              f"{statistics.median(run['workload'] for run in mine):.2f} | "
              f"{statistics.median(run['sinks'] for run in mine):.2f} | "
              f"{statistics.median(run['output_kb_s'] for run in mine):.1f} |")
    print("\nEvery run: " + "; ".join(f"{run['side']} {run['mode']} {run['agent']:.2f}%"
                                       for run in runs))


if __name__ == "__main__":
    main()
