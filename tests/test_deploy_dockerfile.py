"""The Dockerfile, checked by reading it (tests/test_image.py builds and runs
it): every file it copies exists and is in the build context, it installs
Debian's bcc and a venv that sees it from a base pinned by digest, the
Python packages exactly as requirements.lock pins them, and the image runs
the commands the DaemonSet gives it."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from ig_metrics.deploy.manifests import DeployOptions, run_command

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


def test_built_from_debian_bookworm_pinned_by_digest_with_bcc(steps):
    keyword, base = steps[0]
    assert keyword == "ARG" and re.fullmatch(
        r"BASE=docker\.io/library/debian:bookworm-slim@sha256:[0-9a-f]{64}", base)
    assert steps[1] == ("FROM", "${BASE} AS runtime")
    installs = [args for keyword, args in steps if keyword == "RUN" and "apt-get install" in args]
    assert {"python3", "python3-bpfcc", "--no-install-recommends"} <= set(
        shlex.split(installs[0]))
    assert "python3-venv" in shlex.split(installs[1])      # the build stage's only
    assert [args for keyword, args in steps if keyword == "FROM"][-1] == "runtime"


def test_python_packages_are_installed_exactly_as_locked(steps):
    runs = " ; ".join(args for keyword, args in steps if keyword == "RUN")
    assert "pip install --no-deps --only-binary=:all: -r /src/requirements.lock" in runs
    assert "pip check" in runs
    lock = (REPO / "requirements.lock").read_text().splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[a-z0-9.-]+==[^=\s]+", pin) for pin in pins), pins
    # Every direct dependency is pinned (pip check in the build finds the rest).
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {pin.split("==")[0] for pin in pins}
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower().replace("_", "-")
        assert name in names, f"{name} is not in requirements.lock: run scripts/lock.sh"


def test_a_pip_index_and_ca_can_be_given_without_reaching_the_image(steps):
    args = [args for keyword, args in steps if keyword == "ARG"]
    assert any("PIP_INDEX_URL" in arg for arg in args)
    runs = [args for keyword, args in steps if keyword == "RUN"]
    assert any("--mount=type=secret,id=pip-ca" in run and "PIP_CERT" in run for run in runs)


def test_every_copied_file_exists_and_is_in_the_build_context(steps):
    copied = []
    for keyword, args in steps:
        if keyword in ("COPY", "ADD"):
            *sources, _destination = shlex.split(args)
            if any(source.startswith("--from=") for source in sources):
                continue                                # from another stage
            copied.extend(source for source in sources if not source.startswith("--"))
    assert copied
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert in_build_context(source, REPO / ".dockerignore"), \
            f".dockerignore leaves out {source}"
    # What pip builds the package from: the project file, its readme, the package.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert {"pyproject.toml", project["readme"], "ig_metrics", "requirements.lock"} <= set(copied)


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


def test_the_build_context_leaves_out_the_rest():
    ignore = REPO / ".dockerignore"
    assert not in_build_context(".venv", ignore)
    assert not in_build_context("tests", ignore)
    assert in_build_context("ig_metrics", ignore)
