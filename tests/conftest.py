"""Shared pytest set-up.

Tests that need a kernel that runs eBPF (root, bcc, the bpf() syscall, tracefs,
kernel headers) are marked `@pytest.mark.bpf`, or take the `bpf_available` fixture
(for fixtures that load a gadget). Where those are missing they skip, with the
reason `ig-metrics doctor` would give; under `CI=true` they fail with it instead,
so a CI machine that lost BPF cannot pass by skipping everything.
"""

from __future__ import annotations

import functools
import os

import pytest


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@functools.cache
def bpf_unavailable_reason() -> str:
    """Why gadgets cannot run on this machine, or "" when they can."""
    from ig_metrics.bpf.environment import preflight

    return "; ".join(preflight())


def require_bpf() -> None:
    """Skips the current test when gadgets cannot run here; fails it under CI=true."""
    reason = bpf_unavailable_reason()
    if not reason:
        return
    if running_in_ci():
        pytest.fail(f"needs BPF, and CI=true forbids skipping: {reason}", pytrace=False)
    pytest.skip(f"needs BPF: {reason}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("bpf") is not None:
        require_bpf()


@pytest.fixture(scope="session")
def bpf_available() -> bool:
    """The same gate as the `bpf` marker, for fixtures that load gadgets."""
    require_bpf()
    return True
