"""Kernel-side cost of every built-in gadget, as ns per event from the
kernel's own statistics (kernel.bpf_stats_enabled: run_time_ns / run_cnt),
side by side with an empty program on the same hooks, under a workload that
exercises the gadget's hooks. Rounds alternate empty and gadget; medians.

Run as root from the repository root:
    .venv/bin/python benchmarks/gadget_overhead.py [--rounds 5] [--gadgets tcp exec ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ig_metrics.bpf.loader import GadgetProgram  # noqa: E402
from ig_metrics.gadgets import builtin_names, resolve  # noqa: E402

EMPTY_BODY = {
    "tracepoint": "int {program}(struct tracepoint__{category}__{event} *args) {{ return 0; }}",
    "raw_tracepoint": "int {program}(struct bpf_raw_tracepoint_args *ctx) {{ return 0; }}",
    "socket_filter": "int {program}(struct __sk_buff *skb) {{ return 0; }}",
}
IPERF_PORT = "5298"


def empty_spec(spec, directory: Path):
    """The gadget's spec with a C file of empty programs on the same hooks."""
    lines = []
    for hook in spec.active_hooks:
        category, _, event = hook.target.partition(":")
        lines.append(EMPTY_BODY[hook.kind].format(program=hook.program, category=category,
                                                  event=event))
    program = directory / f"{spec.name}_empty.bpf.c"
    program.write_text("\n".join(lines) + "\n")
    return dataclasses.replace(spec, program=program, seeds=())


def program_stats(program: GadgetProgram) -> dict[str, tuple[int, int]]:
    return {stat.name: (stat.run_time_ns, stat.run_count) for stat in program.program_stats()}


# --- workloads: each makes the gadget's hooks fire many times ---------------------
def python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True)


def tcp_workload() -> None:
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", IPERF_PORT],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    threading.Event().wait(0.3)
    subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", IPERF_PORT, "-l", "128", "-t", "3"],
                   stdout=subprocess.DEVNULL, check=True)
    server.wait(timeout=30)


def exec_workload() -> None:
    for _ in range(300):
        subprocess.run(["/bin/true"], check=True)


def syscalls_workload() -> None:
    python("import os\nfor _ in range(300000): os.getppid()")


def file_workload() -> None:
    python("import os\nfor _ in range(50000): os.close(os.open('/etc/hostname', os.O_RDONLY))")


def blockio_workload() -> None:
    with tempfile.NamedTemporaryFile(dir="/var/tmp") as target:
        subprocess.run(["dd", "if=/dev/zero", f"of={target.name}", "bs=4k", "count=3000",
                        "oflag=direct"], capture_output=True, check=True)


def sched_workload() -> None:
    python("""
import os
a_r, a_w = os.pipe(); b_r, b_w = os.pipe()
if os.fork() == 0:
    for _ in range(20000):
        os.read(a_r, 1); os.write(b_w, b"x")
    os._exit(0)
for _ in range(20000):
    os.write(a_w, b"x"); os.read(b_r, 1)
os.wait()
""")


def dns_workload() -> None:
    from tests.dns_server import A, DnsServer, ask
    server = DnsServer("127.0.0.53", {"known.test"})
    try:
        for index in range(2000):
            ask(server.host, "known.test", A, index & 0xFFFF)
    finally:
        server.close()


WORKLOADS = {"tcp": tcp_workload, "exec": exec_workload, "syscalls": syscalls_workload,
             "file": file_workload, "blockio": blockio_workload, "sched": sched_workload,
             "dns": dns_workload}


def measure(spec, workload) -> dict[str, float]:
    """ns per event of each program that ran, over one run of `workload`."""
    program = GadgetProgram(spec)
    program.load()
    program.attach()
    try:
        before = program_stats(program)
        workload()
        after = program_stats(program)
    finally:
        program.close()
    costs = {}
    for name, (time_ns, count) in after.items():
        runs = count - before[name][1]
        if runs:
            costs[name] = ((time_ns - before[name][0]) / runs, runs)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gadgets", nargs="+", default=builtin_names())
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark attaches BPF programs")
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=True)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.gadgets:
            spec = resolve(name)
            empty = empty_spec(spec, Path(scratch))
            rounds: dict[str, list] = {"empty": [], "gadget": []}
            for round_number in range(args.rounds):
                order = [("empty", empty), ("gadget", spec)]
                if round_number % 2:
                    order.reverse()
                for label, contender in order:
                    rounds[label].append(measure(contender, WORKLOADS[name]))
            results[name] = rounds
            print(f"{name}: done", file=sys.stderr, flush=True)
    report(results)


def report(results) -> None:
    print("| gadget | program | events per run | empty ns/event | gadget ns/event | added |")
    print("|---|---|---|---|---|---|")
    for name, rounds in results.items():
        programs = sorted({program for run in rounds["gadget"] for program in run})
        for program in programs:
            gadget = [run[program][0] for run in rounds["gadget"] if program in run]
            empty = [run[program][0] for run in rounds["empty"] if program in run]
            events = statistics.median(run[program][1] for run in rounds["gadget"]
                                       if program in run)
            if not gadget or not empty:
                continue
            g, e = statistics.median(gadget), statistics.median(empty)
            print(f"| {name} | {program} | {events:,.0f} | {e:.0f} | {g:.0f} | {g - e:+.0f} |")


if __name__ == "__main__":
    main()
