"""The kernel matrix: per kernel, a guest that runs scripts/setup.sh --test and
then pytest, its junit XML and phase times collected in a folder of its own."""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from .image import Image
from .qemu import GuestResult, boot

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


def setup_and_pytest(pytest_args: list[str]) -> str:
    """The guest's command: the README's set-up, then pytest with junit XML."""
    return (PHASES + "phase setup scripts/setup.sh --test || exit\n"
            + 'phase tests .venv/bin/python -m pytest --junitxml="$IG_GUEST_OUTPUT/junit.xml" '
            + shlex.join(pytest_args) + "\n")


def run_kernel(image: Image, kernel: str, command: str, *, folder: Path, timeout: float,
               echo: bool) -> KernelRun:
    """Boots `kernel` to run `command`, with `folder` (emptied first) as its output folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    result = boot(kernel, command, timeout, output_dir=folder, echo=echo, image=image)
    (folder / "output.log").write_text(result.output)
    return KernelRun(kernel, image.kernels[kernel].release, result, _phases(folder / "phases"),
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
