"""The exec gadget against the real kernel: a known number of execs of a
known binary, and failing execs, counted exactly under the right command
(for a failure, the program it tried), parent command and errno."""

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

# Each path in a child of its own, which execs it (os.execv: no PATH search)
# or, when that fails, exits.
EXEC_EACH = r"""
for path in args:
    child = os.fork()
    if child == 0:
        try:
            os.execv(path, [path])
        finally:
            os._exit(1)
    os.waitpid(child, 0)
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
    # A failed exec is counted under the program it tried.
    assert total(snapshot, "process.execution.errors", process__parent__command="igm-exec-par",
                 process__command="igm-missing", error__type="ENOENT") == 3
    assert total(snapshot, "process.execution.errors", process__parent__command="igm-exec-par",
                 process__command="igm-noexec", error__type="EACCES") == 2
    assert total(snapshot, "process.execution.errors",
                 process__parent__command="igm-exec-par") == 5
    # A success has no error.
    for point in points(snapshot, "process.executions", process__command="igm-true"):
        assert "error.type" not in dict(point.attributes)


def test_a_failed_exec_names_the_program_as_the_kernel_would_have(bpf_available, tmp_path):
    """The name is the file name's last component cut to 15 characters, as
    the kernel names a program it runs: a failed exec of a long name gets
    the name a successful exec of the same name got from the kernel."""
    long_name = "igm-long-program-name"                 # 21 characters
    runs = tmp_path / long_name
    shutil.copy("/bin/true", runs)
    (tmp_path / "noexec").mkdir()
    refused = tmp_path / "noexec" / long_name
    refused.write_text("#!/bin/sh\n")
    refused.chmod(0o644)                              # no execute bit: EACCES, even for root
    missing = "/nonexistent/igm-missing-prog"        # 16 characters
    workload = NamedProcess("igm-exec-each", EXEC_EACH, str(runs), str(refused),
                            missing, missing, missing, "igm-relative")
    snapshot = run_exec_gadget([workload])
    mine = {"process__parent__command": "igm-exec-each"}
    assert total(snapshot, "process.executions", process__command="igm-long-progra",
                 **mine) == 1
    assert total(snapshot, "process.execution.errors", process__command="igm-long-progra",
                 error__type="EACCES", **mine) == 1
    assert total(snapshot, "process.execution.errors", process__command="igm-missing-pro",
                 error__type="ENOENT", **mine) == 3
    # a name without a directory: looked for in the current one, as given
    assert total(snapshot, "process.execution.errors", process__command="igm-relative",
                 error__type="ENOENT", **mine) == 1
    assert total(snapshot, "process.execution.errors", **mine) == 5


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
        "process.execution.errors": ["process.command", "process.parent.command", "error.type",
                                     *CONTAINER_ATTRIBUTES],
    }
    assert [hook["target"] for hook in data["hooks"]][2] == "sched:sched_process_exec"
