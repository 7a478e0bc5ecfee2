"""Kernel-side cost of the tcp gadget, side by side in one run with an empty
program on the same tracepoints and with bpftrace doing
`@[pid, comm] = sum(args->ret)` on them, under loopback iperf3 with 128-byte
writes. Reports ns per event (kernel.bpf_stats_enabled: run_time_ns /
run_cnt), iperf3 throughput, and the CPU share of the process doing the
aggregation (ig-metrics itself, or bpftrace). Rounds alternate the order of
the contenders; medians are reported.

Run as root from the repository root:
    .venv/bin/python benchmarks/tcp_overhead.py --rounds 5 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
HOOKS = ("sock:sock_send_length", "sock:sock_recv_length")
EMPTY_PROGRAM = """
int empty_send(struct tracepoint__sock__sock_send_length *args) { return 0; }
int empty_recv(struct tracepoint__sock__sock_recv_length *args) { return 0; }
"""
BPFTRACE = ("tracepoint:sock:sock_send_length,tracepoint:sock:sock_recv_length "
            "{ @[pid, comm] = sum(args->ret); }")
IPERF_PORT = "5299"
PROFILE = """
exporters:
  bench-prom: {type: prometheus, listen: "127.0.0.1:19464"}
profiles:
  bench: {exporters: [bench-prom], interval: 1s}
"""


def program_stats(names: tuple[str, ...]) -> tuple[int, int]:
    """Sum of (run_time_ns, run_cnt) over loaded programs with these names
    (bpftool truncates names to 15 characters)."""
    listed = json.loads(subprocess.check_output(["bpftool", "-j", "prog", "list"]))
    wanted = {name[:15] for name in names}
    time_ns = count = 0
    for program in listed:
        if program.get("name", "") in wanted:
            time_ns += program.get("run_time_ns", 0)
            count += program.get("run_cnt", 0)
    return time_ns, count


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks   # utime + stime


def iperf(seconds: int) -> float:
    """Throughput of one loopback iperf3 run with 128-byte writes, in Gbit/s."""
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", IPERF_PORT],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    try:
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", IPERF_PORT, "-l", "128",
                              "-t", str(seconds), "-J"], capture_output=True, text=True,
                             check=True).stdout
    finally:
        server.wait(timeout=30)
    return json.loads(out)["end"]["sum_sent"]["bits_per_second"] / 1e9


class Contender:
    name = ""
    programs: tuple[str, ...] = ()
    pid: int | None = None        # the user-space process doing the aggregation

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Baseline(Contender):
    name = "no program"


class Empty(Contender):
    name = "empty program"
    programs = ("empty_send", "empty_recv")

    def start(self) -> None:
        from bcc import BPF
        self.bpf = BPF(text=EMPTY_PROGRAM.encode())
        self.bpf.attach_tracepoint(tp=b"sock:sock_send_length", fn_name=b"empty_send")
        self.bpf.attach_tracepoint(tp=b"sock:sock_recv_length", fn_name=b"empty_recv")

    def stop(self) -> None:
        self.bpf.cleanup()


class Gadget(Contender):
    name = "ig-metrics tcp"
    programs = ("on_send", "on_recv")

    def __init__(self, profiles: Path) -> None:
        self.profiles = profiles

    def start(self) -> None:
        self.process = subprocess.Popen(
            [IG_METRICS, "run", "--gadget", "tcp", "--profile", "bench", "--profiles-dir",
             str(self.profiles), "--no-tui"], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        for line in self.process.stderr:       # wait until it says it is attached
            if "attached" in line:
                break
        time.sleep(1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=30)


class Bpftrace(Contender):
    name = "bpftrace"
    programs = ("sock_send_length", "sock_recv_length")

    def start(self) -> None:
        self.process = subprocess.Popen(["bpftrace", "-e", BPFTRACE], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.pid = self.process.pid
        self.process.stdout.readline()         # "Attaching 2 probes..."
        time.sleep(1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.communicate(timeout=30)


def measure(contender: Contender, seconds: int) -> dict:
    contender.start()
    try:
        before = program_stats(contender.programs) if contender.programs else (0, 0)
        cpu_before = cpu_seconds(contender.pid) if contender.pid else 0.0
        started = time.monotonic()
        throughput = iperf(seconds)
        elapsed = time.monotonic() - started
        cpu = (cpu_seconds(contender.pid) - cpu_before) if contender.pid else 0.0
        after = program_stats(contender.programs) if contender.programs else (0, 0)
    finally:
        contender.stop()
    runs = after[1] - before[1]
    return {
        "throughput_gbps": throughput,
        "ns_per_event": (after[0] - before[0]) / runs if runs else None,
        "events": runs,
        "cpu_share_percent": 100.0 * cpu / elapsed if contender.pid else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark attaches BPF programs")
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=True)
    profiles = ROOT / "benchmarks" / "results" / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "bench.yaml").write_text(PROFILE)
    contenders = [Baseline(), Empty(), Gadget(profiles), Bpftrace()]
    results: dict[str, list[dict]] = {c.name: [] for c in contenders}
    for round_number in range(args.rounds):
        order = contenders[round_number % len(contenders):] + \
            contenders[:round_number % len(contenders)]
        for contender in order:
            result = measure(contender, args.seconds)
            results[contender.name].append(result)
            print(f"round {round_number + 1} {contender.name}: {result}", file=sys.stderr)
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(results: dict[str, list[dict]], args) -> None:
    summary = {name: {key: median(run[key] for run in runs) for key in runs[0]}
               for name, runs in results.items()}
    empty = summary["empty program"]["ns_per_event"]
    bpftrace = summary["bpftrace"]["ns_per_event"]
    gadget = summary["ig-metrics tcp"]["ns_per_event"]
    baseline = summary["no program"]["throughput_gbps"]
    print(f"\n{args.rounds} rounds of {args.seconds} s loopback iperf3, 128-byte writes "
          "(medians)\n")
    print("| contender | ns/event | added over empty | throughput Gbit/s | vs no program "
          "| aggregator CPU % |")
    print("|---|---|---|---|---|---|")
    for name, row in summary.items():
        ns = row["ns_per_event"]
        added = f"{ns - empty:.1f}" if ns is not None and name != "empty program" else "–"
        cpu = f"{row['cpu_share_percent']:.2f}" if row["cpu_share_percent"] is not None \
            else "–"
        print(f"| {name} | {f'{ns:.1f}' if ns is not None else '–'} | {added} | "
              f"{row['throughput_gbps']:.3f} | {row['throughput_gbps'] / baseline:.2f} | {cpu} |")
    ratio = (gadget - empty) / (bpftrace - empty)
    print(f"\nig-metrics adds {gadget - empty:.1f} ns per event over the empty program; "
          f"bpftrace adds {bpftrace - empty:.1f} ns: a ratio of {ratio:.2f} "
          f"(goal: at most 0.20).")


if __name__ == "__main__":
    main()
