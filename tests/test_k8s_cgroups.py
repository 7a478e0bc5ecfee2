"""cgroup ids resolved for real: cgroups made under this machine's cgroup v2
mount, named exactly as kubelet and each container runtime name them (the
examples of the naming table), a process moved into one, and the id the
kernel gives BPF programs for it mapped back to its container and pod."""

from __future__ import annotations

import logging
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ig_metrics.bpf.cgroupfs import find_cgroup2_mount
from ig_metrics.k8s.cgroups import CgroupPaths, CgroupResolver, identify_process, walk_cgroups
from ig_metrics.k8s.containers import CONTAINER_RULES, CgroupIdentity
from ig_metrics.model.semconv import CONTAINER_ID, CONTAINER_RUNTIME, POD_UID

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


# --- new cgroups' paths, recorded in the kernel (k8s/cgrouprecorder.py) --------------
@pytest.fixture
def recorder(bpf_available):
    from ig_metrics.k8s.cgrouprecorder import CgroupRecorder

    attached = CgroupRecorder(find_cgroup2_mount())
    attached.attach()
    yield attached
    attached.close()


@pytest.mark.bpf
@pytest.mark.parametrize("use_handles", [True, False], ids=["open_by_handle_at", "walk"])
def test_a_cgroup_gone_before_it_is_asked_about_resolves_from_what_the_kernel_recorded(
        cgroups, recorder, use_handles):
    pod_uid, container_id = str(uuid.uuid4()), os.urandom(32).hex()
    relative = ("/kubepods.slice/kubepods-besteffort.slice/"
                f"kubepods-besteffort-pod{pod_uid.replace('-', '_')}.slice/"
                f"cri-containerd-{container_id}.scope")
    cgroup_id = cgroups.make(relative)
    survivor = cgroups.make(f"/docker/{os.urandom(32).hex()}")
    cgroups.remove(relative)

    # The hierarchy alone: the cgroup is gone, and known to be.
    alone = CgroupPaths(use_handles=use_handles, min_walk_interval=0)
    assert alone.path(survivor) is not None
    assert alone.path(cgroup_id) is None and alone.known_gone(cgroup_id)

    paths = CgroupPaths(use_handles=use_handles, min_walk_interval=0)
    paths.recorded = recorder.path
    assert paths.path(survivor) is not None          # (the walk, in that mode, comes first)
    resolver = CgroupResolver(paths)
    assert resolver.attributes(cgroup_id) == expected_attributes(container_id, "containerd",
                                                                 pod_uid)
    assert not paths.known_gone(cgroup_id)
    recorder.close()
    assert paths.path(cgroup_id) == relative         # read from the kernel once, then kept


@pytest.mark.bpf
def test_only_the_cgroup_v2_hierarchy_is_recorded(cgroups, recorder):
    """cgroup v1 hierarchies number their cgroups apart: their ids are not the
    ones BPF programs see, and would collide with them."""
    v1 = next((Path(line.split()[1]) for line in Path("/proc/self/mounts").read_text()
               .splitlines() if line.split()[2] == "cgroup"), None)
    if v1 is None:
        pytest.skip("no cgroup v1 hierarchy is mounted here")
    name = f"igm-v1-{os.urandom(4).hex()}"
    (v1 / name).mkdir()
    try:
        v1_id = (v1 / name).stat().st_ino
    finally:
        (v1 / name).rmdir()
    v2_id = cgroups.make(f"/{name}")
    assert recorder.path(v2_id) == f"/{name}"
    assert recorder.path(v1_id) is None


@pytest.mark.bpf
def test_a_path_too_long_to_record_is_left_to_the_hierarchy(cgroups, recorder):
    relative = "".join(f"/igm-{level}-{'x' * 200}" for level in range(3))    # 618 bytes
    cgroup_id = cgroups.make(relative)
    assert recorder.path(cgroup_id) is None
    paths = CgroupPaths(use_handles=True)
    paths.recorded = recorder.path
    assert paths.path(cgroup_id) == relative


@pytest.mark.bpf
def test_under_a_mount_of_a_subtree_recorded_paths_are_relative_to_it(cgroups, bpf_available,
                                                                       tmp_path):
    """As inside a kind node, whose /sys/fs/cgroup shows its own cgroup's
    subtree: the kernel gives paths from the hierarchy's root."""
    from ig_metrics.k8s.cgrouprecorder import CgroupRecorder

    node = f"/igm-node-{os.urandom(4).hex()}"
    cgroups.make(node)
    mount = tmp_path / "cgroup"
    mount.mkdir()
    subprocess.run(["mount", "--bind", str(cgroups.mount / node.lstrip("/")), str(mount)],
                   check=True)
    try:
        recorder = CgroupRecorder(mount)
        recorder.attach()
        try:
            gone = cgroups.make(f"{node}/gone")
            cgroups.remove(f"{node}/gone")
            assert recorder.path(gone) is None      # nothing tells yet what is above the mount
            container = os.urandom(32).hex()
            alive = cgroups.make(f"{node}/docker/{container}")
            assert recorder.path(alive) == f"/docker/{container}"
            assert recorder.path(gone) == "/gone"
            assert recorder.path(cgroups.make(f"{node}-elsewhere")) is None
        finally:
            recorder.close()
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_without_the_tracepoint_attribution_goes_on_as_before_with_one_log_line(
        cgroups, monkeypatch, caplog):
    """As on a kernel without cgroup:cgroup_mkdir: cgroups resolve from the
    hierarchy, and the log says once what is lost."""
    from ig_metrics.k8s import cgrouprecorder
    from ig_metrics.k8s.attribution import start_attribution

    monkeypatch.setattr(cgrouprecorder, "TRACEPOINT", "cgroup:cgroup_not_on_this_kernel")
    with caplog.at_level(logging.DEBUG, logger="ig_metrics"):
        attribution = start_attribution(environ={})
        try:
            attribution.attach()
            assert attribution.recorder is None
            relative = f"/docker/{os.urandom(32).hex()}"
            assert attribution.cgroups.paths.path(cgroups.make(relative)) == relative
        finally:
            attribution.close()
    assert [record.getMessage() for record in caplog.records
            if record.levelno >= logging.WARNING] == [
        "attribution: the paths of new cgroups are not recorded (this kernel has no "
        "cgroup:cgroup_not_on_this_kernel tracepoint): a container whose cgroup is removed "
        "before its counts are first read is attributed to no container"]
