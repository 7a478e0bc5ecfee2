"""Where the cgroup v2 hierarchy is mounted, read from /proc/self/mounts: at
/sys/fs/cgroup on a pure v2 host, at /sys/fs/cgroup/unified on a v1/v2 hybrid."""

from __future__ import annotations

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
