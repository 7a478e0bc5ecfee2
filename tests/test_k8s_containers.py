"""The naming table read as data: what each cgroup path says about its
container and pod, including the layouts the rules must not be fooled by."""

from __future__ import annotations

from pathlib import Path

import pytest

from ig_metrics.bpf.cgroupfs import NoCgroup2Mount, cgroup2_mount_points, find_cgroup2_mount
from ig_metrics.k8s.cgroups import proc_cgroup_path
from ig_metrics.k8s.containers import NO_IDENTITY, CgroupIdentity, identify

ID = "0123456789abcdef" * 4
INNER = "fedcba9876543210" * 4
UID = "6f1c2a4e-8b0d-4c3e-9f7a-1b2c3d4e5f60"
SLICE_UID = UID.replace("-", "_")


@pytest.mark.parametrize("path, identity", [
    # Guaranteed pods sit right under kubepods, without a QoS slice.
    (f"/kubepods.slice/kubepods-pod{SLICE_UID}.slice/cri-containerd-{ID}.scope",
     CgroupIdentity(ID, "containerd", UID)),
    (f"/kubepods/pod{UID}/{ID}", CgroupIdentity(ID, "containerd", UID)),
    # kind: a kubelet inside a Docker container, with its own cgroup root.
    (f"/system.slice/docker-{ID}.scope/kubelet.slice/kubelet-kubepods.slice/"
     f"kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{SLICE_UID}.slice/"
     f"cri-containerd-{INNER}.scope", CgroupIdentity(INNER, "containerd", UID)),
    # The kind node's own services belong to its container, in no pod.
    (f"/system.slice/docker-{ID}.scope/system.slice/containerd.service",
     CgroupIdentity(ID, "docker", None)),
    # What a process in a cgroup namespace reads in /proc/PID/cgroup.
    (f"/../../kubepods-besteffort-pod{SLICE_UID}.slice/crio-{ID}.scope",
     CgroupIdentity(ID, "cri-o", UID)),
    # A container's own sub-cgroups (systemd inside the container).
    (f"/machine.slice/libpod-{ID}.scope/container/init.scope", CgroupIdentity(ID, "podman", None)),
    # conmon monitors a container from outside it.
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{SLICE_UID}.slice/"
     f"crio-conmon-{ID}.scope", CgroupIdentity(None, None, UID)),
    (f"/machine.slice/libpod-conmon-{ID}.scope", NO_IDENTITY),
    # A bare id is a container only where kubelet or Docker put it.
    (f"/system.slice/{ID}", NO_IDENTITY),
    (f"/elsewhere/pod{UID}/{ID}", NO_IDENTITY),
    ("/system.slice/containerd.service", NO_IDENTITY),
    ("/user.slice/user-1000.slice/session-3.scope", NO_IDENTITY),
    ("/", NO_IDENTITY),
    # Ids are 64 lowercase hex digits, no more, no fewer.
    (f"/system.slice/docker-{ID[:-1]}.scope", NO_IDENTITY),
    (f"/system.slice/docker-{ID}0.scope", NO_IDENTITY),
    (f"/system.slice/docker-{ID.upper()}.scope", NO_IDENTITY),
])
def test_identify(path, identity):
    assert identify(path) == identity


def test_attributes_leave_out_what_is_not_known():
    assert CgroupIdentity(None, None, UID).attributes() == (("k8s.pod.uid", UID),)
    assert NO_IDENTITY.attributes() == ()


PURE_V2 = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
"""
HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
# A pod: the runtime's view of its own cgroup namespace, then the host's
# hierarchy mounted over it, and a stray mount elsewhere listed first.
IN_A_POD = """\
cgroup2 /run/other\\040place cgroup2 ro 0 0
cgroup /sys/fs/cgroup cgroup2 ro,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 ro,relatime 0 0
"""


@pytest.mark.parametrize("table, mount", [(PURE_V2, "/sys/fs/cgroup"),
                                          (HYBRID, "/sys/fs/cgroup/unified"),
                                          (IN_A_POD, "/sys/fs/cgroup")])
def test_the_cgroup2_mount_is_found(tmp_path, table, mount):
    mounts = tmp_path / "mounts"
    mounts.write_text(table)
    assert find_cgroup2_mount(mounts) == Path(mount)


def test_mount_points_are_unescaped_and_listed_once():
    assert cgroup2_mount_points(IN_A_POD) == ["/run/other place", "/sys/fs/cgroup"]


def test_no_cgroup2_mount_says_what_to_do(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n")
    with pytest.raises(NoCgroup2Mount, match="mount the host's /sys/fs/cgroup"):
        find_cgroup2_mount(mounts)


@pytest.mark.parametrize("lines, expected", [
    ([f"0::/system.slice/docker-{ID}.scope"], f"/system.slice/docker-{ID}.scope"),
    # Hybrid, container placed in the v2 hierarchy too: v2 wins.
    (["4:memory:/docker/x", f"1:name=systemd:/docker/{ID}", f"0::/docker/{ID}"], f"/docker/{ID}"),
    # Hybrid, runtime that manages v1 only: the container sits at the v2 root.
    (["4:memory:/docker/x", f"1:name=systemd:/docker/{ID}", "0::/"], f"/docker/{ID}"),
    # v1 only.
    ([f"3:cpu,cpuacct:/kubepods/pod{UID}/{ID}"], f"/kubepods/pod{UID}/{ID}"),
    (["0::/"], "/"),
])
def test_the_cgroup_of_a_process_is_read_from_proc(tmp_path, lines, expected):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text("\n".join(lines) + "\n")
    assert proc_cgroup_path(42, proc=tmp_path) == expected
    assert proc_cgroup_path(43, proc=tmp_path) is None        # exited


def test_the_docs_show_every_naming_rule():
    from ig_metrics.k8s.containers import CONTAINER_RULES, POD_RULES

    docs = (Path(__file__).resolve().parent.parent / "docs" / "kubernetes.md").read_text()
    for rule in CONTAINER_RULES:
        assert f"| {rule.runtime} | {rule.driver} | `{rule.example}` |" in docs, rule.example
    for rule in POD_RULES:
        assert rule.example in docs or rule.example.rsplit("/", 1)[-1] in docs, rule.example
