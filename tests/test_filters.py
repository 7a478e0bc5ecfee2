"""--pid, --comm and --cgroup, decided in the kernel: traffic of processes the
filter leaves out never reaches a map."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from ig_metrics.bpf.filters import FilterError, ProcessFilter, cgroup2_mount
from ig_metrics.cli import app
from tests.snapshots import PIDS, total
from tests.tcp_workload import CLIENT, EchoCountServer, run_client


def run_filtered(process_filter: ProcessFilter, traffic) -> tuple:
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    spec = resolve("tcp")
    program = GadgetProgram(spec, process_filter=process_filter)
    program.load()
    program.attach()
    server = EchoCountServer(reply_bytes=5)
    try:
        sampler = Sampler(spec, program, resource=(), idle_expiry=0, selection=PIDS)
        result = traffic(server)
        time.sleep(0.05)
        return sampler.tick(), result, program.has_table("ig_filter")
    finally:
        server.close()
        program.close()


@pytest.mark.bpf
def test_comm_filter_keeps_only_that_command(bpf_available):
    def traffic(server):
        kept = run_client("127.0.0.1", server.port, send_bytes=100, name="igm-keep")
        dropped = run_client("127.0.0.1", server.port, send_bytes=200, name="igm-drop")
        server.wait_for(2)
        return kept, dropped

    snapshot, (kept, dropped), _ = run_filtered(ProcessFilter(comm="igm-keep"), traffic)
    assert total(snapshot, "tcp.sent", process__pid=kept.pid) == 100
    assert total(snapshot, "tcp.sent", process__pid=dropped.pid) == 0
    # The server (this process, another name) is left out too.
    assert total(snapshot, "tcp.received", process__pid=os.getpid()) == 0


@pytest.mark.bpf
def test_pid_filter_keeps_only_that_process(bpf_available):
    def traffic(server):
        other = run_client("127.0.0.1", server.port, send_bytes=200)
        server.wait_for(1)
        return other

    snapshot, other, _ = run_filtered(ProcessFilter(pids=(os.getpid(),)), traffic)
    assert total(snapshot, "tcp.received", process__pid=os.getpid()) == 200
    assert total(snapshot, "tcp.connections.opened", process__pid=os.getpid()) == 1
    assert total(snapshot, "tcp.sent", process__pid=other.pid) == 0


@pytest.mark.bpf
def test_cgroup_filter_keeps_the_cgroup_and_those_below_it(bpf_available, tmp_path):
    root = cgroup2_mount(None)
    assert root is not None, "no cgroup v2 mount"
    parent = root / f"igm-filter-{os.getpid()}"
    inner = parent / "inner"
    inner.mkdir(parents=True)

    def traffic(server):
        # A shell moves itself into the inner cgroup, then becomes the client.
        inside = subprocess.run(
            ["sh", "-c", f"echo $$ > {inner}/cgroup.procs && exec {sys.executable} -c "
                         f"'{CLIENT}' igm-cg 4 127.0.0.1 {server.port} 321 1"],
            capture_output=True, text=True, check=True)
        outside = run_client("127.0.0.1", server.port, send_bytes=123)
        server.wait_for(2)
        return inside, outside

    try:
        snapshot, (inside, outside), _ = run_filtered(ProcessFilter(cgroup=parent), traffic)
    finally:
        inner.rmdir()
        parent.rmdir()
    assert total(snapshot, "tcp.sent", process__command="igm-cg") == 321
    assert total(snapshot, "tcp.sent", process__pid=outside.pid) == 0


@pytest.mark.bpf
def test_no_filter_compiles_no_filter_code(bpf_available):
    snapshot, _, has_filter_map = run_filtered(ProcessFilter(), lambda server: None)
    assert not has_filter_map


@pytest.mark.parametrize("flags,message", [
    (["--comm", "a-name-longer-than-15"], "--comm: 'a-name-longer-than-15' must be 1 to 15"),
    (["--cgroup", "/tmp"], "--cgroup: /tmp is not on a cgroup v2 file system"),
    (["--cgroup", "/nonexistent/dir"], "--cgroup: /nonexistent/dir is not a directory"),
    (["--pid", "0"], "--pid: 0 is not a process id"),
    (["--pid", "abc"], "--pid"),
])
def test_bad_filters_exit_2_before_anything_runs(flags, message):
    result = CliRunner().invoke(app, ["run", "--gadget", "tcp", *flags])
    assert result.exit_code == 2
    assert message in result.output


def test_too_many_pids_are_refused():
    with pytest.raises(FilterError, match="at most 16"):
        ProcessFilter(pids=tuple(range(1, 18)))
