"""The cgroup v2 hierarchy as BPF's cgroup ids see it: where it is mounted (read
from /proc/self/mounts: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified
on a v1/v2 hybrid), and the cgroup id of a process."""

from __future__ import annotations

import os
from pathlib import Path

MOUNTS_FILE = Path("/proc/self/mounts")
# Where hosts put the v2 hierarchy, best first. A container may see more than
# one cgroup2 mount (its runtime's view of its own cgroup namespace, and the
# host's /sys/fs/cgroup mounted over or beside it): the well-known places win.
USUAL_MOUNT_POINTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")


class NoCgroup2Mount(RuntimeError):
    """This host (or container) has no cgroup v2 hierarchy mounted."""


def cgroup2_mount_points(mounts_text: str) -> list[str]:
    """Every cgroup2 mount point in a mounts table, in its order, each once."""
    points: list[str] = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            point = _unescape(fields[1])
            if point not in points:
                points.append(point)
    return points


def find_cgroup2_mount(mounts_file: Path = MOUNTS_FILE) -> Path:
    """The cgroup v2 mount point; NoCgroup2Mount says what to do without one."""
    points = cgroup2_mount_points(mounts_file.read_text())
    for usual in USUAL_MOUNT_POINTS:
        if usual in points:
            return Path(usual)
    if points:
        return Path(points[0])
    raise NoCgroup2Mount(
        f"no cgroup2 file system in {mounts_file}: container attribution needs the "
        "cgroup v2 hierarchy (mounted at /sys/fs/cgroup, or /sys/fs/cgroup/unified on "
        "hybrid hosts); in a pod, mount the host's /sys/fs/cgroup")


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def process_cgroup_id(pid: int, mount: Path, proc: Path = Path("/proc")) -> int | None:
    """The id bpf_get_current_cgroup_id() gives for `pid` (the inode of its
    cgroup v2 directory under `mount`); None when the process or its cgroup is
    gone, or it has no cgroup v2 line (a v1-only host)."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None or "/.." in path:
        return None     # no v2 hierarchy, or a path seen from another cgroup namespace
    try:
        return os.stat(mount / path.lstrip("/")).st_ino
    except FileNotFoundError:
        return None


def process_cgroup(pid: int, proc: Path = Path("/proc")) -> int:
    """The cgroup id the kernel side would have taken for `pid`; 0 when it
    cannot be known (no cgroup v2 hierarchy, the process gone)."""
    try:
        mount = find_cgroup2_mount()
    except NoCgroup2Mount:
        return 0
    return process_cgroup_id(pid, mount, proc) or 0
