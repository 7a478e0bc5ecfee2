"""Is a cgroup hierarchy writable from here? The DaemonSet gives the agent the
node's cgroup v2 hierarchy read-only (`--cgroup2-path`). A `hostPath`'s
`readOnly` is not recursive where the runtime has no recursive read-only
mounts (podman 4.3, containerd 1.7): on a hybrid node deployed with the
default `/sys/fs/cgroup`, the v1 hierarchies mounted below it (`memory`,
`cpu`, …, and `unified`) stay writable, and a process of the pod can move
itself into the node's root cgroup (`echo $$ > …/memory/cgroup.procs`) and
out of its limits. The agent says so at start (a warning, `doctor`'s
`cgroup-writes` check, the `ig_metrics.cgroup.writable_mounts` self-metric).

The test is cheap (one read of /proc/self/mountinfo, one access() per cgroup
mount, well under a millisecond) and exact: a cgroup or cgroup2 mount the
process sees whose mount is not read-only, and whose `cgroup.procs` at the
mount's top the kernel lets this process open for writing (access(W_OK) is
the kernel's own permission check, read-only mounts included).

Only a confined process is asked: one without CAP_SYS_ADMIN in its effective
set. With it (root on the host, a privileged container, `deploy --sys-admin`)
it could mount a cgroup hierarchy read-write itself: writable mounts add
nothing, and a host's own cgroups are writable by design."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ig_metrics.bpf.environment import CAP_SYS_ADMIN, Check
from ig_metrics.bpf.kernel import DEFAULT_PATHS, HostPaths
from ig_metrics.model.snapshot import GAUGE, MetricData, MetricInfo, Point

CGROUP_FS_TYPES = ("cgroup", "cgroup2")
HYBRID_CGROUP2_PATH = "/sys/fs/cgroup/unified"
# Options of a v1 hierarchy that are not a controller it binds.
NOT_CONTROLLERS = frozenset({"rw", "ro", "xattr", "noprefix", "clone_children",
                             "cpuset_v2_mode", "favordynmods"})
# How to tell a hybrid node, and what to deploy there.
HYBRID_NODE = ("a hybrid cgroup v1/v2 node (`stat -fc %T /sys/fs/cgroup` says tmpfs and "
               f"{HYBRID_CGROUP2_PATH} exists)")
FIX = (f"on {HYBRID_NODE} deploy with --cgroup2-path {HYBRID_CGROUP2_PATH}, the only cgroup "
       "mount the agent needs; or run on a runtime with recursive read-only mounts "
       "(containerd >= 2.0 or CRI-O >= 1.30, with Kubernetes >= 1.31)")

WRITABLE_MOUNTS = MetricInfo(
    "ig_metrics.cgroup.writable_mounts", GAUGE, "{mount}",
    "cgroup hierarchies this agent, without CAP_SYS_ADMIN, can write (checked at start): "
    "a process of its pod could leave its cgroup's limits through them. 0 is right; "
    "on a hybrid cgroup v1/v2 node deploy with --cgroup2-path /sys/fs/cgroup/unified.")


@dataclass(frozen=True, slots=True)
class CgroupMount:
    """One cgroup or cgroup2 mount of /proc/self/mountinfo."""

    point: str
    fstype: str
    mount_options: frozenset[str]       # the mount's own (ro, nosuid, …)
    super_options: frozenset[str]       # the file system's (rw, memory, name=systemd, …)

    @property
    def read_only(self) -> bool:
        return "ro" in self.mount_options or "ro" in self.super_options

    @property
    def hierarchy(self) -> str:
        """"cgroup2", or "cgroup v1: memory" with the v1 hierarchy's controllers."""
        if self.fstype == "cgroup2":
            return "cgroup2"
        controllers = sorted(option for option in self.super_options
                             if option not in NOT_CONTROLLERS
                             and not option.startswith("release_agent="))
        return f"cgroup v1: {','.join(controllers) or '?'}"


@dataclass(frozen=True, slots=True)
class WritableMount:
    mount: CgroupMount
    path: Path                          # what opens for writing (under the root given)

    @property
    def description(self) -> str:
        return f"{self.mount.point} ({self.mount.hierarchy})"


def cgroup_mounts(mountinfo: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts of a mountinfo text, one per mount point:
    the last mounted there, which is the one a path reaches."""
    found: dict[str, CgroupMount] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            separator = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < separator + 3 or fields[separator + 1] not in CGROUP_FS_TYPES:
            continue
        point = _unescape(fields[4])
        found.pop(point, None)          # a later mount on the same point hides the earlier
        found[point] = CgroupMount(point, fields[separator + 1],
                                   frozenset(fields[5].split(",")),
                                   frozenset(fields[separator + 3].split(",")))
    return list(found.values())


def find_writable(mountinfo: str, root: Path = Path("/")) -> list[WritableMount]:
    """The cgroup mounts of `mountinfo` that are writable from here: not
    read-only, and their top `cgroup.procs` (the directory itself where there
    is none: a cgroup can be made) is writable by this process. `root` is
    where the paths are looked up: "/" on a real host, a fake host's
    directory in tests."""
    writable = []
    for mount in cgroup_mounts(mountinfo):
        if mount.read_only:
            continue
        directory = root / mount.point.lstrip("/")
        target = directory / "cgroup.procs"
        if not os.path.lexists(target):
            target = directory
        if os.access(target, os.W_OK):
            writable.append(WritableMount(mount, target))
    return writable


def confined(status_text: str) -> bool:
    """Whether the process whose /proc/PID/status this is lacks CAP_SYS_ADMIN
    in its effective set (and so could not mount a cgroup hierarchy itself)."""
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", status_text, re.M)
    effective = int(match[1], 16) if match else 0
    return not effective >> CAP_SYS_ADMIN & 1


def writable_cgroup_mounts(paths: HostPaths = DEFAULT_PATHS) -> list[str]:
    """For the agent at start: a description of each cgroup hierarchy this
    process can write ("/sys/fs/cgroup/memory (cgroup v1: memory)"); empty
    when there is none, when the process has CAP_SYS_ADMIN (not confined: see
    the module), or when /proc cannot be read. Never raises."""
    try:
        if not confined(paths.proc_status.read_text()):
            return []
        mountinfo = paths.at("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    return [found.description for found in find_writable(mountinfo, paths.root)]


def writable_cgroups_warning(descriptions: Sequence[str]) -> str:
    """The agent's warning for what writable_cgroup_mounts() found."""
    return (f"{len(descriptions)} cgroup "
            f"{'hierarchy is' if len(descriptions) == 1 else 'hierarchies are'} writable "
            f"from here: {', '.join(descriptions)}. A process here can move itself "
            "out of its cgroup's limits (e.g. into the node's root cgroup through "
            f"cgroup.procs). {FIX[0].upper()}{FIX[1:]}")


def writable_mounts_metric(descriptions: Sequence[str], now_ns: int) -> MetricData:
    """The self-metric: how many cgroup hierarchies were writable at start."""
    return MetricData(WRITABLE_MOUNTS, (Point((), len(descriptions), now_ns),))


def check_cgroup_writes(paths: HostPaths = DEFAULT_PATHS) -> Check:
    """doctor's `cgroup-writes`: informational, as the other attribution
    checks are (gadgets run either way), but not ok when a hierarchy is
    writable."""
    mountinfo_file = paths.at("/proc/self/mountinfo")
    try:
        status = paths.proc_status.read_text()
        mountinfo = mountinfo_file.read_text()
    except OSError as error:
        return Check("cgroup-writes", False, f"cannot read {error.filename}: {error.strerror}",
                     "run on Linux with /proc mounted", required=False)
    mounts = cgroup_mounts(mountinfo)
    if not confined(status):
        return Check("cgroup-writes", True, "this process has CAP_SYS_ADMIN: it could mount "
                     "a cgroup hierarchy read-write itself, so the cgroup mounts' "
                     f"writability ({len(mounts)} seen) is not checked", required=False)
    writable = find_writable(mountinfo, paths.root)
    if writable:
        return Check("cgroup-writes", False,
                     f"WRITABLE from here, without CAP_SYS_ADMIN: "
                     f"{', '.join(found.description for found in writable)}: a process here "
                     "can leave its cgroup's limits through their cgroup.procs", FIX,
                     required=False)
    return Check("cgroup-writes", True, f"no cgroup mount is writable from here "
                 f"({len(mounts)} seen: {', '.join(m.point for m in mounts) or 'none'})",
                 required=False)


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)
