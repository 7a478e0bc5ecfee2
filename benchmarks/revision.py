"""The code a benchmark measures: this checkout ("after"), or a git revision
("before", e.g. main) exported to a temporary directory with `git archive`
(nothing in the repository changes), run side by side in one invocation.

A benchmark that measures in its own process re-runs itself with
IG_METRICS_CODE naming the code to import; one that runs the agent starts it
with that code first on PYTHONPATH (and a working directory outside this
checkout, which would otherwise come first)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(os.environ.get("IG_METRICS_CODE", ROOT))
AFTER = "after"


def use_code() -> None:
    """Makes `import ig_metrics` (and the benchmarks' own imports) take CODE."""
    for path in (str(ROOT / "benchmarks"), str(CODE)):
        if path not in sys.path[:2]:
            sys.path.insert(0, path)


def export(revision: str) -> Path:
    """`revision` of this repository as files in a temporary directory
    (removed at exit)."""
    directory = Path(tempfile.mkdtemp(prefix="ig-metrics-before-"))
    atexit.register(shutil.rmtree, directory, True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def revisions_for(before: str) -> dict[str, Path]:
    """The "before" side's name -> its exported code (none when `before` is '')."""
    return {f"before ({before})": export(before)} if before else {}


def code_for(side: str, revisions: dict[str, Path]) -> Path:
    return ROOT if side == AFTER else revisions[side]


def environment(code: Path) -> dict[str, str]:
    """The environment of a process that is to run `code` (agent or benchmark)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("OTEL_") and not name.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(code)
    env["IG_METRICS_CODE"] = str(code)
    return env


def stop(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop an agent as a user would (SIGTERM: detach, final export); killed
    if it has not ended after `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def malloc_as_run() -> None:
    """This process' malloc set as `ig-metrics run` sets it (the thresholds
    fixed at 128 KiB: each multi-MB buffer of a tick is mapped and unmapped on
    its own), where the revision measured does so."""
    try:
        from ig_metrics.bpf.memory import fix_malloc_thresholds
    except ImportError:          # a revision from before it: its run did not either
        return
    fix_malloc_thresholds()
