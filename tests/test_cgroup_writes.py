"""Writable cgroup hierarchies (k8s/cgroupwrites.py): against fake hosts (a
directory laid out like / with the mountinfo a container would see), and the
real check on this machine. The container itself is run by tests/test_image.py
(podman, the DaemonSet's settings): there `doctor` names the writable v1
hierarchies of the old whole-/sys/fs/cgroup mount."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.bpf.environment import CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, HostPaths
from ig_metrics.cli import app
from ig_metrics.k8s.cgroupwrites import (
    FIX,
    WRITABLE_MOUNTS,
    cgroup_mounts,
    check_cgroup_writes,
    confined,
    find_writable,
    writable_cgroup_mounts,
    writable_cgroups_warning,
    writable_mounts_metric,
)
from ig_metrics.k8s.checks import attribution_checks

REPO = Path(__file__).resolve().parent.parent
# The DaemonSet's container: uid 0 with BPF, PERFMON and SYS_RESOURCE only.
POD_CAPS = 1 << CAP_BPF | 1 << CAP_PERFMON | 1 << 24
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")

# A pure v2 node, deployed with the default --cgroup2-path /sys/fs/cgroup: the
# runtime's own (cgroup-namespaced) mount, hidden by the host's, read-only.
PURE_V2 = """\
1420 1300 0:400 / / ro,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
1421 1420 0:401 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1430 1420 0:402 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
1431 1430 0:27 /kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot
1440 1430 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime master:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""


def hybrid(cgroup2_path: str) -> str:
    """A hybrid node's pod, as a runtime without recursive read-only mounts
    makes it: --cgroup2-path /sys/fs/cgroup brings the tmpfs read-only and
    every hierarchy below it read-write; /sys/fs/cgroup/unified only that one."""
    lines = ["1420 1300 0:400 / / ro,relatime - overlay overlay rw,lowerdir=/l",
             "1430 1420 0:402 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro",
             "1431 1430 0:403 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs "
             "tmpfs ro,mode=755"]
    for number, controller in enumerate(V1_CONTROLLERS):
        lines.append(f"{1432 + number} 1431 0:{30 + number} /kubepods/pod1/ab "
                     f"/sys/fs/cgroup/{controller} ro,nosuid,nodev,noexec,relatime - cgroup "
                     f"cgroup rw,{controller}")
    if cgroup2_path == "/sys/fs/cgroup":
        lines.append("1450 1430 0:28 / /sys/fs/cgroup ro,relatime - tmpfs tmpfs ro,mode=755")
        for number, controller in enumerate(V1_CONTROLLERS):
            lines.append(f"{1451 + number} 1450 0:{30 + number} / /sys/fs/cgroup/{controller} "
                         f"rw,nosuid,nodev,noexec,relatime shared:{10 + number} - cgroup "
                         f"cgroup rw,{controller}")
        lines.append("1460 1450 0:40 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime "
                     "- cgroup cgroup rw,xattr,name=systemd")
        lines.append("1461 1450 0:41 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime "
                     "- cgroup2 cgroup2 rw,nsdelegate")
    else:
        lines.append(f"1450 1430 0:41 / {cgroup2_path} ro,relatime - cgroup2 cgroup2 "
                     "rw,nsdelegate")
    return "\n".join(lines) + "\n"


def fake_host(root: Path, mountinfo: str, *, caps: int = POD_CAPS) -> HostPaths:
    """A directory laid out like the container's /: /proc/self's status and
    mountinfo, and a cgroup.procs at the top of every cgroup mount."""
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/status").write_text(f"Name:\tig-metrics\nUid:\t0\t0\t0\t0\n"
                                           f"CapEff:\t{caps:016x}\n")
    (root / "proc/self/mountinfo").write_text(mountinfo)
    for mount in cgroup_mounts(mountinfo):
        directory = root / mount.point.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cgroup.procs").write_text("")
    return HostPaths(root=root)


def test_a_pure_v2_read_only_mount_passes(tmp_path: Path) -> None:
    host = fake_host(tmp_path, PURE_V2)
    assert [mount.point for mount in cgroup_mounts(PURE_V2)] == ["/sys/fs/cgroup"]
    assert find_writable(PURE_V2, tmp_path) == []
    assert writable_cgroup_mounts(host) == []
    check = check_cgroup_writes(host)
    assert check.ok and check.status == "info", check
    assert "no cgroup mount is writable" in check.detail and "/sys/fs/cgroup" in check.detail


def test_the_runtimes_own_mount_hidden_below_a_writable_one_does_not_hide_it(
        tmp_path: Path) -> None:
    """The last mount on a point is the one its path reaches."""
    mountinfo = PURE_V2.replace(
        "1440 1430 0:27 / /sys/fs/cgroup ro,nosuid",
        "1440 1430 0:27 / /sys/fs/cgroup rw,nosuid")
    fake_host(tmp_path, mountinfo)
    [found] = find_writable(mountinfo, tmp_path)
    assert found.description == "/sys/fs/cgroup (cgroup2)"
    assert found.path == tmp_path / "sys/fs/cgroup/cgroup.procs"


def test_hybrid_with_the_whole_sys_fs_cgroup_is_reported_with_the_paths(
        tmp_path: Path) -> None:
    host = fake_host(tmp_path, hybrid("/sys/fs/cgroup"))
    found = writable_cgroup_mounts(host)
    assert found == [*(f"/sys/fs/cgroup/{c} (cgroup v1: {c})" for c in V1_CONTROLLERS),
                     "/sys/fs/cgroup/systemd (cgroup v1: name=systemd)",
                     "/sys/fs/cgroup/unified (cgroup2)"]
    paths = [w.path for w in find_writable(hybrid("/sys/fs/cgroup"), tmp_path)]
    assert tmp_path / "sys/fs/cgroup/memory/cgroup.procs" in paths

    check = check_cgroup_writes(host)
    assert not check.ok and not check.required and check.status == "info", check
    assert "/sys/fs/cgroup/memory (cgroup v1: memory)" in check.detail
    assert "--cgroup2-path /sys/fs/cgroup/unified" in check.fix and "stat -fc %T" in check.fix

    warning = writable_cgroups_warning(found)
    assert warning.startswith("10 cgroup hierarchies are writable from here: ")
    assert "/sys/fs/cgroup/memory (cgroup v1: memory)" in warning
    assert "--cgroup2-path /sys/fs/cgroup/unified" in warning

    metric = writable_mounts_metric(found, 123)
    assert metric.info is WRITABLE_MOUNTS and metric.info.kind == "gauge"
    assert [(p.attributes, p.value) for p in metric.points] == [((), 10)]
    assert writable_mounts_metric([], 123).points[0].value == 0


def test_hybrid_with_cgroup2_path_unified_passes(tmp_path: Path) -> None:
    host = fake_host(tmp_path, hybrid("/sys/fs/cgroup/unified"))
    assert writable_cgroup_mounts(host) == []
    assert check_cgroup_writes(host).ok


def test_a_file_the_process_cannot_write_is_not_reported() -> None:
    """Not read-only, but not writable by this process either (a user's agent
    with file capabilities, the host's root-owned cgroup.procs): the kernel's
    access() decides. Asked as a user other than the files' owner (root would
    write a 0444 file all the same, with CAP_DAC_OVERRIDE)."""
    mountinfo = hybrid("/sys/fs/cgroup")
    with tempfile.TemporaryDirectory(prefix="igm-cgroup-writes-") as scratch:
        root = Path(scratch)
        root.chmod(0o755)               # pytest's tmp_path is root's alone
        fake_host(root, mountinfo)
        for mount in cgroup_mounts(mountinfo):
            (root / mount.point.lstrip("/") / "cgroup.procs").chmod(0o444)
        if os.geteuid() != 0:
            assert find_writable(mountinfo, root) == []
            return
        assert len(find_writable(mountinfo, root)) == 10        # root: DAC_OVERRIDE
        code = ("import sys; from pathlib import Path; "
                "from ig_metrics.k8s.cgroupwrites import find_writable; "
                "print(len(find_writable(sys.argv[1], Path(sys.argv[2]))))")
        # The package copied where nobody can read it: a checkout may sit in a
        # directory that is root's alone (a fresh clone in mktemp -d).
        code_dir = root / "code"
        shutil.copytree(REPO / "ig_metrics", code_dir / "ig_metrics",
                        ignore=shutil.ignore_patterns("__pycache__"))
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 sys.executable, "-c", code, mountinfo, str(root)],
                                capture_output=True, text=True, timeout=60,
                                cwd=code_dir, env={**os.environ, "PYTHONPATH": str(code_dir)},
                                check=False)
    if result.returncode != 0 and "Permission denied" in result.stderr:
        pytest.skip(f"nobody cannot run this checkout's Python: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_with_cap_sys_admin_nothing_is_confined_nor_reported(tmp_path: Path) -> None:
    """Root on a host, a privileged container: it could mount a hierarchy itself."""
    host = fake_host(tmp_path, hybrid("/sys/fs/cgroup"), caps=POD_CAPS | 1 << CAP_SYS_ADMIN)
    assert writable_cgroup_mounts(host) == []
    check = check_cgroup_writes(host)
    assert check.ok and "CAP_SYS_ADMIN" in check.detail and "10 seen" in check.detail


def test_confined_reads_the_effective_set() -> None:
    assert confined(f"CapEff:\t{POD_CAPS:016x}\n")
    assert not confined(f"CapPrm:\t0\nCapEff:\t{1 << CAP_SYS_ADMIN:016x}\n")
    assert confined("Name:\tx\n")        # no capability line: nothing effective


def test_mount_points_with_escaped_characters(tmp_path: Path) -> None:
    mountinfo = "50 1 0:41 / /sys/fs/cgroup/a\\040b rw,relatime - cgroup2 cgroup2 rw\n"
    fake_host(tmp_path, mountinfo)
    [found] = find_writable(mountinfo, tmp_path)
    assert found.mount.point == "/sys/fs/cgroup/a b"


def test_unreadable_proc_is_said_and_never_raises(tmp_path: Path) -> None:
    host = HostPaths(root=tmp_path)
    assert writable_cgroup_mounts(host) == []
    check = check_cgroup_writes(host)
    assert not check.ok and "cannot read" in check.detail and not check.required


def test_doctor_shows_the_check(tmp_path: Path) -> None:
    names = [check.name for check in attribution_checks(environ={}, paths=HostPaths())]
    assert names.index("cgroup-writes") == names.index("cgroup-v2") + 1


def test_the_real_check_on_this_machine_runs() -> None:
    """Whatever this machine is: it answers, quickly, and the check agrees
    with the agent's function."""
    import time
    started = time.perf_counter()
    found = writable_cgroup_mounts()
    check = check_cgroup_writes()
    assert time.perf_counter() - started < 0.5
    assert check.name == "cgroup-writes" and not check.required
    assert check.ok == (found == []), (check, found)
    if not check.ok:
        assert check.fix == FIX


def test_the_real_check_confined_here_finds_what_a_write_would() -> None:
    """Without CAP_SYS_ADMIN (setpriv drops it, as the DaemonSet does): each
    mount reported opens for writing, and each one that does not open is not."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop CAP_SYS_ADMIN from")
    code = r"""
import json, os
from ig_metrics.k8s.cgroupwrites import cgroup_mounts, writable_cgroup_mounts
reported = [d.split(" (")[0] for d in writable_cgroup_mounts()]
opened = []
for mount in cgroup_mounts(open("/proc/self/mountinfo").read()):
    try:
        os.close(os.open(os.path.join(mount.point, "cgroup.procs"), os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        continue
    opened.append(mount.point)
print(json.dumps([reported, opened]))
"""
    result = subprocess.run(["setpriv", "--bounding-set=-sys_admin", sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=60,
                            cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    import json
    reported, opened = json.loads(result.stdout)
    assert reported == opened


def test_deploy_says_how_to_choose_the_cgroup2_path(tmp_path: Path) -> None:
    runner = CliRunner()
    default = runner.invoke(app, ["deploy", "--gadget", "tcp"])
    assert default.exit_code == 0, default.output
    note = next(line for line in default.stderr.splitlines() if "--cgroup2-path" in line)
    assert note.startswith("note: ")
    for words in ("stat -fc %T /sys/fs/cgroup", "tmpfs", "--cgroup2-path /sys/fs/cgroup/unified",
                  "memory/cgroup.procs"):
        assert words in note, (words, note)
    chosen = runner.invoke(app, ["deploy", "--gadget", "tcp",
                                 "--cgroup2-path", "/sys/fs/cgroup/unified"])
    assert chosen.exit_code == 0 and "--cgroup2-path" not in chosen.stderr, chosen.stderr
    helped = runner.invoke(app, ["deploy", "--help"], env={"COLUMNS": "400"})
    assert "stat -fc %T /sys/fs/cgroup" in helped.stdout and "tmpfs" in helped.stdout
