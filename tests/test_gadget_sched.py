"""The sched gadget against the real kernel: two processes play ping-pong over
pipes, pinned to one CPU, under command names no other process has.

Why the assertions are exact:
- The kernel counts a thread's switches itself (nvcsw/nivcsw, shown in
  /proc/PID/status) at the very place sched_switch fires, with the same rule
  for voluntary and involuntary the gadget applies to prev_state. Each player
  reads its counters just after taking its name and just before giving it up,
  and once more outside both: the gadget's counts lie between the two deltas
  (in practice equal to both).
- A player holds its name from one rename to the next, and is on a CPU at both
  (it renames itself): every switch-out under the name is followed by a
  switch-in under the name, so run-queue waits == switch-outs, exactly.
- On one CPU, B must run between A's ping and A's reading the pong, and A
  between B's pong and the next ping: at least N switches of A and N - 1 of B.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.snapshots import CONTAINER_ATTRIBUTES, points, total

pytestmark = pytest.mark.bpf

ROUND_TRIPS = 2000

PLAYER = r"""
import ctypes, json, os, sys
role, name, read_fd, write_fd, rounds, cpu = sys.argv[1:7]
read_fd, write_fd, rounds = int(read_fd), int(write_fd), int(rounds)
os.sched_setaffinity(0, {int(cpu)})
libc = ctypes.CDLL(None)
PR_SET_NAME = 15

def switches():
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"])

outer_start = switches()
libc.prctl(PR_SET_NAME, name.encode())
inner_start = switches()
for _ in range(rounds):
    if role == "ping":
        os.write(write_fd, b"p")
        os.read(read_fd, 1)
    else:
        os.read(read_fd, 1)
        os.write(write_fd, b"p")
inner_end = switches()
libc.prctl(PR_SET_NAME, b"igm-sched-done")
outer_end = switches()
print(json.dumps({"inner": [e - s for e, s in zip(inner_end, inner_start)],
                  "outer": [e - s for e, s in zip(outer_end, outer_start)]}))
"""


def play_ping_pong(rounds: int, tag: str) -> dict[str, dict]:
    """Runs the two players to completion; returns what each saw, by name."""
    ping_to_pong = os.pipe()
    pong_to_ping = os.pipe()
    cpu = min(os.sched_getaffinity(0))
    names = {"ping": f"igm-pi-{tag}", "pong": f"igm-po-{tag}"}
    fds = {"ping": (pong_to_ping[0], ping_to_pong[1]), "pong": (ping_to_pong[0], pong_to_ping[1])}
    players = {role: subprocess.Popen(
        [sys.executable, "-c", PLAYER, role, names[role], str(fds[role][0]), str(fds[role][1]),
         str(rounds), str(cpu)], stdout=subprocess.PIPE, text=True, pass_fds=fds[role])
        for role in ("ping", "pong")}
    for fd in (*ping_to_pong, *pong_to_ping):
        os.close(fd)
    seen = {}
    for role, player in players.items():
        out, _ = player.communicate(timeout=120)
        assert player.returncode == 0
        seen[names[role]] = json.loads(out)
    return seen


def run_sched(process_filter=None, tag: str = ""):
    from ig_metrics.bpf.filters import ProcessFilter
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    spec = resolve("sched")
    program = GadgetProgram(spec, process_filter=process_filter or ProcessFilter())
    program.load()
    program.attach()
    try:
        sampler = Sampler(spec, program, resource=(), idle_expiry=0)
        seen = play_ping_pong(ROUND_TRIPS, tag or str(os.getpid()))
        snapshot = sampler.tick()
        missed = sum(stat.missed for stat in program.program_stats())
    finally:
        program.close()
    return snapshot, seen, missed


def switches(snapshot, command: str, kind: str) -> int:
    return total(snapshot, "process.context_switches", process__command=command,
                 process__context_switch_type=kind)


def test_context_switches_match_the_kernels_own_counts(bpf_available):
    snapshot, seen, missed = run_sched()
    assert missed == 0, "a program run was skipped: counts could fall short"
    for name, kernel in seen.items():
        ours = (switches(snapshot, name, "voluntary"), switches(snapshot, name, "involuntary"))
        for index, kind in enumerate(("voluntary", "involuntary")):
            assert kernel["inner"][index] <= ours[index] <= kernel["outer"][index], \
                f"{name} {kind}: ours {ours[index]}, kernel {kernel}"
        # every wait before running, exactly once per switch-out
        (wait,) = points(snapshot, "sched.runqueue.duration", process__command=name)
        assert wait.value.count == sum(ours), f"{name}: waits {wait.value.count}, switches {ours}"
    ping, pong = seen
    assert sum(switches(snapshot, ping, kind) for kind in ("voluntary", "involuntary")) \
        >= ROUND_TRIPS
    assert sum(switches(snapshot, pong, kind) for kind in ("voluntary", "involuntary")) \
        >= ROUND_TRIPS - 1


def test_run_queue_latency_is_in_microseconds_and_plausible(bpf_available):
    snapshot, seen, _ = run_sched(tag=f"{os.getpid()}b")
    for name in seen:
        (wait,) = points(snapshot, "sched.runqueue.duration", process__command=name)
        # each wait is short (a pipe wakeup on an idle CPU), and the sum is
        # in seconds: well under a second per switch on average
        assert 0 < wait.value.sum / wait.value.count < 0.1
        bounds = snapshot.metric("sched.runqueue.duration").info.bounds
        assert bounds[:3] == (0.0, 1e-06, 3e-06)


def test_comm_filter_counts_only_that_command(bpf_available):
    from ig_metrics.bpf.filters import ProcessFilter

    tag = f"{os.getpid() % 100000}f"
    kept = f"igm-pi-{tag}"
    snapshot, seen, _ = run_sched(ProcessFilter(comm=kept), tag=tag)
    assert set(seen) == {kept, f"igm-po-{tag}"}
    ours = (switches(snapshot, kept, "voluntary"), switches(snapshot, kept, "involuntary"))
    assert seen[kept]["inner"][0] <= ours[0] <= seen[kept]["outer"][0]
    assert sum(ours) >= ROUND_TRIPS
    (wait,) = points(snapshot, "sched.runqueue.duration", process__command=kept)
    assert wait.value.count == sum(ours)
    commands = {dict(point.attributes)["process.command"]
                for metric in ("process.context_switches", "sched.runqueue.duration")
                for point in snapshot.metric(metric).points}
    assert commands == {kept}


def test_describe_shows_every_metric_with_its_attributes():
    from typer.testing import CliRunner

    from ig_metrics.cli import app

    data = json.loads(CliRunner().invoke(app, ["gadgets", "describe", "sched", "-o", "json"])
                      .output)
    metrics = {metric["name"]: metric for metric in data["metrics"]}
    assert list(metrics) == ["process.context_switches", "sched.runqueue.duration"]
    assert metrics["process.context_switches"]["attributes"] == [
        "process.command", *CONTAINER_ATTRIBUTES, "process.context_switch_type"]
    assert metrics["process.context_switches"]["prometheus"] == \
        "process_context_switches_total"
    assert metrics["sched.runqueue.duration"]["bounds"][-1] == (2 ** 26 - 1) / 1e6
    text = CliRunner().invoke(app, ["gadgets", "describe", "sched"]).output
    assert all(name in text for name in metrics)
