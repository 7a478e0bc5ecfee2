"""The exec gadget against the real kernel: a known number of execs of a
known binary, and failing execs, counted exactly under the right command,
parent command and errno."""

from __future__ import annotations

import shutil

import pytest

from tests.named_process import NamedProcess
from tests.snapshots import CONTAINER_ATTRIBUTES, points, total

pytestmark = pytest.mark.bpf

RUN_MANY = r"""
target, missing, not_executable, runs, misses, refusals = args
for _ in range(int(runs)):
    subprocess.run([target], check=True)
for path, times in ((missing, misses), (not_executable, refusals)):
    for _ in range(int(times)):
        try:
            subprocess.run([path])
        except OSError:
            pass
"""

EXEC_FROM_THREAD = r"""
thread = threading.Thread(target=lambda: os.execv(args[0], [args[0]]))
thread.start()
thread.join()
"""


@pytest.fixture
def programs(tmp_path):
    """A copy of /bin/true with a name no other process has, and a file that
    cannot be executed (no execute bit: refused even to root)."""
    target = tmp_path / "igm-true"
    shutil.copy("/bin/true", target)
    not_executable = tmp_path / "igm-noexec"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    return str(target), str(tmp_path / "igm-missing"), str(not_executable)


def run_exec_gadget(workloads, process_filter=None):
    """Attach the exec gadget, run every workload to its end, read once."""
    from ig_metrics.bpf.filters import ProcessFilter
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    spec = resolve("exec")
    program = GadgetProgram(spec, process_filter=process_filter or ProcessFilter())
    program.load()
    program.attach()
    try:
        sampler = Sampler(spec, program, resource=(), idle_expiry=0)
        for workload in workloads:
            workload.run()
        return sampler.tick()
    finally:
        program.close()
        for workload in workloads:
            workload.kill()


def test_execs_and_failures_are_counted_exactly(bpf_available, programs):
    target, missing, not_executable = programs
    workload = NamedProcess("igm-exec-par", RUN_MANY, target, missing, not_executable,
                            "25", "3", "2")
    snapshot = run_exec_gadget([workload])
    assert total(snapshot, "process.executions", process__command="igm-true",
                 process__parent__command="igm-exec-par") == 25
    assert total(snapshot, "process.execution.errors", process__parent__command="igm-exec-par",
                 error__type="ENOENT") == 3
    assert total(snapshot, "process.execution.errors", process__parent__command="igm-exec-par",
                 error__type="EACCES") == 2
    # A failed exec started no command, and a success has no error.
    for point in points(snapshot, "process.execution.errors",
                        process__parent__command="igm-exec-par"):
        assert "process.command" not in dict(point.attributes)
    for point in points(snapshot, "process.executions", process__command="igm-true"):
        assert "error.type" not in dict(point.attributes)


def test_exec_from_a_thread_is_counted_once_for_its_caller(bpf_available, programs):
    """A thread that is not the group leader takes the leader's id when it
    execs: the gadget finds its caller by the old id the tracepoint gives."""
    target, _, _ = programs
    workload = NamedProcess("igm-thr-exec", EXEC_FROM_THREAD, target)
    snapshot = run_exec_gadget([workload])
    assert total(snapshot, "process.executions", process__command="igm-true",
                 process__parent__command="igm-thr-exec") == 1


def test_comm_filter_applies_to_the_process_calling_execve(bpf_available, programs):
    from ig_metrics.bpf.filters import ProcessFilter

    target, missing, not_executable = programs
    kept = NamedProcess("igm-exec-keep", RUN_MANY, target, missing, not_executable,
                        "4", "1", "0")
    dropped = NamedProcess("igm-exec-drop", RUN_MANY, target, missing, not_executable,
                           "6", "2", "0")
    snapshot = run_exec_gadget([kept, dropped], ProcessFilter(comm="igm-exec-keep"))
    assert total(snapshot, "process.executions", process__command="igm-true") == 4
    assert total(snapshot, "process.execution.errors") == 1
    assert total(snapshot, "process.executions", process__parent__command="igm-exec-drop") == 0
    assert {dict(point.attributes)["process.parent.command"]
            for point in points(snapshot, "process.executions")} == {"igm-exec-keep"}


def test_describe_shows_every_metric_with_its_attributes():
    import json

    from typer.testing import CliRunner

    from ig_metrics.cli import app

    result = CliRunner().invoke(app, ["gadgets", "describe", "exec", "-o", "json"])
    data = json.loads(result.output)
    assert {metric["name"]: metric["attributes"] for metric in data["metrics"]} == {
        "process.executions": ["process.command", "process.parent.command",
                               *CONTAINER_ATTRIBUTES],
        "process.execution.errors": ["process.parent.command", "error.type",
                                     *CONTAINER_ATTRIBUTES],
    }
    assert [hook["target"] for hook in data["hooks"]][2] == "sched:sched_process_exec"
