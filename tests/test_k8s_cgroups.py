"""cgroup ids resolved for real: cgroups made under this machine's cgroup v2
mount, named exactly as kubelet and each container runtime name them (the
examples of the naming table), a process moved into one, and the id the
kernel gives BPF programs for it mapped back to its container and pod."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ig_metrics.k8s.cgroups import CgroupPaths, CgroupResolver, identify_process, walk_cgroups
from ig_metrics.k8s.containers import (
    CONTAINER_ID, CONTAINER_RULES, CONTAINER_RUNTIME, POD_UID, CgroupIdentity,
)
from ig_metrics.k8s.mounts import find_cgroup2_mount

KUBELET_ROOTS = ("kubepods.slice", "kubepods")


class CgroupTree:
    """Makes cgroups under the v2 mount and removes, leaf first, those it made."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.made: list[Path] = []
        self.processes: list[subprocess.Popen] = []

    def make(self, relative: str) -> int:
        """Creates every missing directory of `relative`; returns the cgroup id."""
        path = self.mount
        for part in relative.strip("/").split("/"):
            path = path / part
            if not path.exists():
                path.mkdir()
                self.made.append(path)
        return path.stat().st_ino

    def remove(self, relative: str) -> None:
        path = self.mount / relative.strip("/")
        path.rmdir()
        self.made.remove(path)

    def cleanup(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        for path in reversed(self.made):
            path.rmdir()


@pytest.fixture
def cgroups():
    if os.geteuid() != 0:
        pytest.skip("making cgroups needs root")
    mount = find_cgroup2_mount()
    taken = [name for name in KUBELET_ROOTS if (mount / name).exists()]
    if taken:
        pytest.skip(f"a kubelet runs here ({mount / taken[0]} exists): the test would "
                    "make its cgroups among the real ones")
    tree = CgroupTree(mount)
    try:
        yield tree
    finally:
        tree.cleanup()


def example_path(example: str, pod_uid: str, container_id: str) -> str:
    """A naming table example filled in: systemd slice names write the uid's
    dashes as underscores."""
    uid = pod_uid.replace("-", "_") if ".slice" in example else pod_uid
    return example.replace("<uid>", uid).replace("<id>", container_id)


def expected_attributes(container_id: str, runtime: str, pod_uid: str | None) -> tuple:
    pod = ((POD_UID, pod_uid),) if pod_uid else ()
    return ((CONTAINER_ID, container_id), (CONTAINER_RUNTIME, runtime), *pod)


@pytest.mark.parametrize("use_handles", [True, False], ids=["open_by_handle_at", "walk"])
@pytest.mark.parametrize("rule", CONTAINER_RULES, ids=lambda rule: f"{rule.runtime}-{rule.driver}")
def test_each_runtime_and_driver_resolves_from_a_real_cgroup(cgroups, rule, use_handles):
    pod_uid, container_id = str(uuid.uuid4()), os.urandom(32).hex()
    relative = example_path(rule.example, pod_uid, container_id)
    cgroup_id = cgroups.make(relative)
    resolver = CgroupResolver(CgroupPaths(use_handles=use_handles))
    assert resolver.paths.path(cgroup_id) == relative
    assert resolver.paths.walks == (0 if use_handles else 1)
    in_pod = "<uid>" in rule.example
    assert resolver.attributes(cgroup_id) == expected_attributes(
        container_id, rule.runtime, pod_uid if in_pod else None)
    # The pod's own cgroup names the pod and no container.
    if in_pod:
        pod_cgroup = relative.rsplit("/", 1)[0]
        assert resolver.attributes(cgroups.make(pod_cgroup)) == ((POD_UID, pod_uid),)


@pytest.mark.bpf
def test_a_process_in_a_kubelet_cgroup_resolves_from_proc_and_from_bpf(cgroups, bpf_available):
    from bcc import BPF

    pod_uid, container_id = str(uuid.uuid4()), os.urandom(32).hex()
    relative = ("/kubepods.slice/kubepods-burstable.slice/"
                f"kubepods-burstable-pod{pod_uid.replace('-', '_')}.slice/"
                f"cri-containerd-{container_id}.scope")
    cgroup_id = cgroups.make(relative)
    # A process that waits for a line before it makes any more system calls.
    process = subprocess.Popen(["sh", "-c", "read first; read second"], stdin=subprocess.PIPE)
    cgroups.processes.append(process)
    (cgroups.mount / relative.lstrip("/") / "cgroup.procs").write_text(str(process.pid))

    assert identify_process(process.pid) == CgroupIdentity(container_id, "containerd", pod_uid)

    program = BPF(text=CGROUP_ID_PROGRAM, cflags=[f"-DTARGET_TGID={process.pid}"])
    try:
        process.stdin.write(b"go\n")
        process.stdin.flush()
        seen = _wait_for_entry(program[b"seen"], process.pid)
    finally:
        program.cleanup()
    assert seen == cgroup_id                 # the id BPF sees is the directory's inode
    for use_handles in (True, False):
        resolver = CgroupResolver(CgroupPaths(use_handles=use_handles))
        assert resolver.paths.path(seen) == relative
        assert resolver.attributes(seen) == expected_attributes(container_id, "containerd",
                                                                pod_uid)


CGROUP_ID_PROGRAM = rb"""
BPF_HASH(seen, u32, u64);

TRACEPOINT_PROBE(raw_syscalls, sys_enter) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (tgid != TARGET_TGID)
        return 0;
    u64 id = bpf_get_current_cgroup_id();
    seen.update(&tgid, &id);
    return 0;
}
"""


def _wait_for_entry(table, pid: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key, value in table.items():
            if key.value == pid:
                return value.value
        time.sleep(0.02)
    pytest.fail(f"no system call of pid {pid} was seen by the BPF program")


def test_a_cgroup_made_after_a_walk_is_found_by_the_next_one(cgroups):
    first = cgroups.make(f"/docker/{os.urandom(32).hex()}")
    paths = CgroupPaths(use_handles=False, min_walk_interval=0)
    assert paths.path(first) is not None and paths.walks == 1
    later_container = os.urandom(32).hex()
    later = cgroups.make(f"/docker/{later_container}")
    assert later > first                          # ids only grow
    assert paths.path(later) == f"/docker/{later_container}"
    assert paths.walks == 2


def test_a_gone_cgroup_costs_no_walk(cgroups):
    container = os.urandom(32).hex()
    short_lived = cgroups.make(f"/docker/{container}")
    survivor = cgroups.make(f"/docker/{os.urandom(32).hex()}")
    cgroups.remove(f"/docker/{container}")
    paths = CgroupPaths(use_handles=False, min_walk_interval=0)
    assert paths.path(survivor) is not None and paths.walks == 1
    # Older than the id that caused the walk, and not found by it: gone.
    assert paths.path(short_lived) is None
    assert paths.walks == 1
    handles = CgroupPaths(use_handles=True)
    assert handles.path(short_lived) is None and handles.path(short_lived) is None
    assert handles.walks == 0


def test_walks_are_spaced_by_the_minimum_interval(cgroups):
    now = [100.0]
    paths = CgroupPaths(use_handles=False, min_walk_interval=1.0, clock=lambda: now[0])
    paths.refresh()
    new = cgroups.make(f"/docker/{os.urandom(32).hex()}")
    assert paths.path(new) is None and paths.walks == 1      # too soon after the last walk
    now[0] += 1.0
    assert paths.path(new) is not None and paths.walks == 2


def test_the_cache_is_bounded(cgroups):
    ids = [cgroups.make(f"/docker/{os.urandom(32).hex()}") for _ in range(4)]
    walked = CgroupPaths(use_handles=False, max_entries=3)
    walked.refresh()
    assert len(walked) == 3
    assert walked.path(ids[-1]) is not None                  # the newest are kept
    handled = CgroupPaths(use_handles=True, max_entries=2)
    for cgroup_id in ids:
        assert handled.path(cgroup_id) is not None
    assert len(handled) == 2
    resolver = CgroupResolver(CgroupPaths(use_handles=True), max_entries=2)
    for cgroup_id in ids:
        assert resolver.attributes(cgroup_id)
    assert len(resolver._identities) == len(resolver._attributes) == 2


def test_a_walk_reads_each_directory_once_and_stats_none(cgroups, monkeypatch):
    made = {cgroups.make(f"/docker/{os.urandom(32).hex()}") for _ in range(3)}
    stats = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat",
                        lambda path, *a, **k: stats.append(path) or real_stat(path, *a, **k))
    found = walk_cgroups(cgroups.mount)
    assert made <= set(found) and found[real_stat(cgroups.mount).st_ino] == "/"
    assert stats == [cgroups.mount]                        # the root only: readdir gives inodes
