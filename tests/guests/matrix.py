"""The kernel matrix: per kernel, a guest that runs scripts/setup.sh --test and
then pytest, its junit XML and phase times collected in a folder of its own."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from .image import Image
from .qemu import REPOSITORY, GuestResult, boot

# Each phase appends "<name> <start> <end> <status>" to $IG_GUEST_OUTPUT/phases.
PHASES = """\
phase() {
    local name=$1 start=$EPOCHREALTIME status=0
    shift
    "$@" || status=$?
    echo "$name $start $EPOCHREALTIME $status" >>"$IG_GUEST_OUTPUT/phases"
    return "$status"
}
"""


@dataclass(frozen=True)
class KernelRun:
    kernel: str
    release: str
    result: GuestResult
    phases: dict[str, tuple[float, int]]     # "setup", "tests": (seconds, exit status)
    counts: dict[str, int] | None            # from junit.xml: passed, failed, skipped, errors


# Every gadget's exactness: its own test module (the sampler against known
# workloads), its end-to-end test on Prometheus and OTLP at once, several
# gadgets in one run, README's quick start, doctor, and the map reads' fallback.
EXACTNESS = ("tests/test_gadgets_exported.py", "tests/test_tcp_gadget.py",
             "tests/test_gadget_exec.py", "tests/test_gadget_syscalls.py",
             "tests/test_gadget_file.py", "tests/test_gadget_blockio.py",
             "tests/test_gadget_sched.py", "tests/test_gadget_dns.py",
             "tests/test_several_gadgets.py", "tests/test_quickstart.py",
             "tests/test_doctor.py", "tests/test_map_reader_fallback.py")


def setup_and_pytest(pytest_args: list[str]) -> str:
    """The guest's command: the README's set-up, what the kernel offers the
    gadgets (facts.json, doctor.json: docs/kernels.md reads them), then pytest
    with junit XML (by default the gadgets' exactness tests)."""
    return (PHASES + "phase setup scripts/setup.sh --test || exit\n"
            + 'phase facts bash -c \'.venv/bin/python -m tests.guests.facts '
              '>"$IG_GUEST_OUTPUT/facts.json"\'\n'
            + 'phase doctor bash -c \'.venv/bin/ig-metrics doctor --output json '
              '>"$IG_GUEST_OUTPUT/doctor.json"\'\n'
            + 'phase tests .venv/bin/python -m pytest --junitxml="$IG_GUEST_OUTPUT/junit.xml" '
            + shlex.join(pytest_args or EXACTNESS) + "\n")


def run_kernel(image: Image, kernel: str, command: str, *, folder: Path, timeout: float,
               echo: bool) -> KernelRun:
    """Boots `kernel` to run `command`, with `folder` (emptied first) as its output folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    result = boot(kernel, command, timeout, output_dir=folder, echo=echo, image=image)
    (folder / "output.log").write_text(result.output)
    return KernelRun(kernel, image.kernels[kernel].release, result, _phases(folder / "phases"),
                     _counts(folder / "junit.xml"))


def run_host(command: str, folder: Path) -> KernelRun:
    """`command` on this machine's own kernel, as a guest would run it."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", command], cwd=REPOSITORY, capture_output=True,
                          text=True, env={**os.environ, "IG_GUEST_OUTPUT": str(folder)},
                          check=False)
    output = done.stdout + done.stderr
    (folder / "output.log").write_text(output)
    result = GuestResult(done.returncode, output, time.monotonic() - started, 0.0, False,
                         folder / "output.log")
    return KernelRun("host", os.uname().release, result, _phases(folder / "phases"),
                     _counts(folder / "junit.xml"))


def _phases(path: Path) -> dict[str, tuple[float, int]]:
    phases = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, start, end, status = line.split()
            phases[name] = (float(end) - float(start), int(status))
    return phases


def _counts(path: Path) -> dict[str, int] | None:
    if not path.exists():
        return None
    totals = {"tests": 0, "failures": 0, "skipped": 0, "errors": 0}
    for suite in ElementTree.parse(path).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
    return {"passed": totals["tests"] - totals["failures"] - totals["skipped"] - totals["errors"],
            "failed": totals["failures"], "skipped": totals["skipped"], "errors": totals["errors"]}


def summary(runs: list[KernelRun], image_seconds: float) -> str:
    """One line per kernel: outcome, test counts and the wall time of each phase."""
    lines = [f"image build/check: {image_seconds:.0f} s",
             (f"{'kernel':<7} {'release':<22} {'result':<10} {'passed':>6} {'failed':>6} {'skipped':>7} "
              f"{'errors':>6} {'boot':>6} {'setup':>7} {'tests':>7} {'total':>7}")]
    for run in runs:
        result = run.result
        outcome = ("timeout" if result.timed_out else "no status" if result.exit_code is None
                   else "ok" if result.exit_code == 0 else f"exit {result.exit_code}")
        counts = run.counts or {}
        lines.append(
            f"{run.kernel:<7} {run.release:<22} {outcome:<10} "
            + " ".join(f"{counts.get(key, '-'):>{width}}" for key, width in
                       (("passed", 6), ("failed", 6), ("skipped", 7), ("errors", 6)))
            + f" {_seconds(result.boot_duration):>6} {_seconds(run.phases.get('setup', (None,))[0]):>7}"
            + f" {_seconds(run.phases.get('tests', (None,))[0]):>7} {_seconds(result.duration):>7}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"
