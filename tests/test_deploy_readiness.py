"""The DaemonSet's exec readiness probe, run as the kubelet runs it: in the
agent's cgroup (its container), ready exactly while `ig-metrics run` has its
gadget attached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ig_metrics.bpf.cgroupfs import find_cgroup2_mount
from ig_metrics.k8s.readiness import is_agent

CONSOLE_SCRIPT = Path(sys.executable).parent / "ig-metrics"
JOIN_AND_EXEC = 'echo $$ > "$0" && exec "$@"'     # a process entering the "container"


@pytest.mark.parametrize("argv, agent", [
    (["/opt/ig-metrics/bin/python3", "/opt/ig-metrics/bin/ig-metrics", "run", "--gadget", "tcp"],
     True),
    (["ig-metrics", "run", "-g", "tcp"], True),
    (["ig-metrics", "deploy", "--gadget", "tcp"], False),
    (["python3", "-m", "ig_metrics.k8s.readiness"], False),
    (["vim", "ig-metrics", "notes"], False),
    ([""], False),
])
def test_which_processes_are_the_agent(argv, agent):
    assert is_agent(argv) is agent


@pytest.fixture
def container_cgroup():
    """A cgroup standing in for the pod's container: the agent and the probe
    both run in it, and nothing else does."""
    cgroup = find_cgroup2_mount() / f"ig-metrics-readiness-{os.getpid()}"
    cgroup.mkdir()
    processes: list[subprocess.Popen] = []
    try:
        yield cgroup, processes
    finally:
        for process in processes:
            process.kill()
            process.wait()
        cgroup.rmdir()


def probe(cgroup: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", JOIN_AND_EXEC, str(cgroup / "cgroup.procs"),
                           sys.executable, "-m", "ig_metrics.k8s.readiness"],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.bpf
def test_ready_exactly_while_the_gadget_is_attached(container_cgroup, bpf_available, tmp_path):
    cgroup, processes = container_cgroup
    # A file, not a pipe: the console exporter writes every series to stderr, and
    # a pipe nobody reads fills up (64 KiB) on a busy host and blocks the agent.
    log = tmp_path / "agent.stderr"
    before = probe(cgroup)
    assert before.returncode == 1 and "no 'ig-metrics run' process" in before.stdout

    agent = subprocess.Popen(["sh", "-c", JOIN_AND_EXEC, str(cgroup / "cgroup.procs"),
                              str(CONSOLE_SCRIPT), "run", "--gadget", "tcp", "--profile", "debug",
                              "--no-tui"],
                             stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
    processes.append(agent)
    deadline = time.monotonic() + 60
    while (result := probe(cgroup)).returncode != 0:
        assert agent.poll() is None, f"the agent exited: {log.read_text()}"
        assert time.monotonic() < deadline, result.stdout
        time.sleep(0.2)
    assert f"(pid {agent.pid})" in result.stdout and "attachments" in result.stdout

    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 0
    after = probe(cgroup)
    assert after.returncode == 1


def test_another_containers_agent_does_not_make_this_one_ready(container_cgroup):
    """An agent outside the probe's cgroup (another pod, seen through hostPID)."""
    cgroup, processes = container_cgroup
    # A process whose command line is the agent's, in this test's cgroup.
    lookalike = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                                  "ig-metrics", "run"])
    processes.append(lookalike)
    deadline = time.monotonic() + 10
    while not is_agent(Path(f"/proc/{lookalike.pid}/cmdline").read_text().split("\0")):
        assert time.monotonic() < deadline, "the look-alike never showed its command line"
        time.sleep(0.01)                 # not exec'd yet
    result = probe(cgroup)
    assert result.returncode == 1 and "no 'ig-metrics run' process" in result.stdout


SOCKET_FILTER_AGENT = """
import sys, time
from bcc import BPF
bpf = BPF(text=b"int keep_none(struct __sk_buff *skb) { return 0; }")
program = bpf.load_func(b"keep_none", BPF.SOCKET_FILTER)
if sys.argv[-1] == "attach":
    BPF.attach_raw_socket(program, b"lo")
print("loaded", flush=True)
time.sleep(60)
"""


@pytest.mark.bpf
@pytest.mark.parametrize("attach", [True, False], ids=["attached", "loaded only"])
def test_a_socket_filter_counts_as_attached_once_on_its_packet_socket(container_cgroup,
                                                                      bpf_available, attach):
    """Gadgets with socket_filter hooks attach to an AF_PACKET socket, not
    through a perf event or a BPF link."""
    cgroup, processes = container_cgroup
    agent = subprocess.Popen(["sh", "-c", JOIN_AND_EXEC, str(cgroup / "cgroup.procs"),
                              sys.executable, "-c", SOCKET_FILTER_AGENT, "ig-metrics", "run",
                              "attach" if attach else "load"],
                             stdout=subprocess.PIPE, text=True)
    processes.append(agent)
    assert agent.stdout.readline() == "loaded\n"
    result = probe(cgroup)
    assert result.returncode == (0 if attach else 1), result.stdout
