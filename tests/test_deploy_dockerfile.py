"""The Dockerfile, checked by reading it: docker cannot run on this machine, so
no image is built here. Every file it copies exists and is in the build
context, it installs Debian's bcc and a venv that sees it, and the image runs
the commands the DaemonSet gives it."""

from __future__ import annotations

import fnmatch
import shlex
import tomllib
from pathlib import Path

import pytest

from ig_metrics.k8s.manifests import DeployOptions, readiness_probe, run_command

REPO = Path(__file__).resolve().parent.parent


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, arguments = whole.strip().partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return result


def in_build_context(path: str, ignore_file: Path) -> bool:
    """Whether .dockerignore lets `path` into the build context (its rules in
    order, the last match deciding; `!` re-includes)."""
    included = True
    for rule in ignore_file.read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            included = negated
    return included


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(REPO / "Dockerfile")


def test_built_from_debian_bookworm_with_bcc(steps):
    assert steps[0] == ("FROM", "debian:bookworm")
    installs = [args for keyword, args in steps if keyword == "RUN" and "apt-get install" in args]
    assert installs and {"python3", "python3-venv", "python3-bpfcc"} <= set(
        shlex.split(installs[0]))


def test_every_copied_file_exists_and_is_in_the_build_context(steps):
    copied = []
    for keyword, args in steps:
        if keyword in ("COPY", "ADD"):
            *sources, _destination = shlex.split(args)
            copied.extend(source for source in sources if not source.startswith("--"))
    assert copied
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert in_build_context(source, REPO / ".dockerignore"), \
            f".dockerignore leaves out {source}"
    # What pip builds the package from: the project file, its readme, the package.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert {"pyproject.toml", project["readme"], "ig_metrics"} <= set(copied)


def test_the_venv_sees_bcc_and_is_first_on_path(steps):
    runs = " ; ".join(args for keyword, args in steps if keyword == "RUN")
    assert "python3 -m venv --system-site-packages /opt/ig-metrics" in runs
    assert "/opt/ig-metrics/bin/pip install" in runs
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert "PATH=/opt/ig-metrics/bin:$PATH" in env


def test_the_image_runs_what_the_daemonset_asks(steps):
    entrypoint = next(args for keyword, args in steps if keyword == "ENTRYPOINT")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert entrypoint == '["ig-metrics"]' and "ig-metrics" in project["scripts"]
    options = DeployOptions("tcp", "local")
    assert run_command(options)[0] == "ig-metrics"
    # The exec probe's interpreter is the venv's python3, first on PATH.
    assert readiness_probe([])["exec"]["command"][:3] == ["python3", "-m",
                                                          "ig_metrics.k8s.readiness"]
    assert (REPO / "ig_metrics" / "k8s" / "readiness.py").is_file()


def test_the_build_context_leaves_out_the_rest():
    ignore = REPO / ".dockerignore"
    assert not in_build_context(".venv", ignore)
    assert not in_build_context("tests", ignore)
    assert in_build_context("ig_metrics", ignore)
