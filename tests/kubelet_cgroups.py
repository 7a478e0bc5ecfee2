"""cgroups named exactly as kubelet (systemd cgroup driver) and containerd name a
pod's container, made under the cgroup v2 mount: they STAND IN FOR A CONTAINER,
as no kubelet or container runtime runs here. A process is in the "container"
once its pid is written to the cgroup's cgroup.procs, and that is all that
bpf_get_current_cgroup_id() and ig-metrics' resolver look at."""

from __future__ import annotations

import errno
import secrets
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ig_metrics.bpf.cgroupfs import find_cgroup2_mount

# The shell a process enters the container with before it becomes the workload:
# $0 is the cgroup.procs file, "$@" the workload's argv.
JOIN_AND_EXEC = 'echo $$ > "$0" && exec "$@"'

# Directories made by any KubeletContainer of this test process; shared parents
# (kubepods.slice, the QoS slice) are removed by the last container that leaves.
_MADE: set[Path] = set()


@dataclass
class KubeletContainer:
    """One container of one pod: its cgroup, pod uid and 64-hex container id."""

    pod_uid: str
    container_id: str
    path: Path
    base: Path                  # the directory kubepods.slice is in

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    @property
    def prefix(self) -> list[str]:
        """Put before a workload's argv: it then runs inside the container, with
        the pid the shell had (the shell execs it)."""
        return ["sh", "-c", JOIN_AND_EXEC, str(self.procs)]

    def shell(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs a shell script whose every command runs inside the container."""
        return subprocess.run(["sh", "-c", f'echo $$ > "$0" && {script}', str(self.procs)],
                              capture_output=True, text=True, timeout=timeout, check=True)

    def remove(self) -> None:
        """Moves any process left to this test process's own cgroup, then
        removes the container's and pod's cgroups, and the parents nobody
        uses any more."""
        home = find_cgroup2_mount() / _own_cgroup().lstrip("/")
        for directory in (self.path, self.path.parent):
            _evacuate(directory, home)
            _rmdir(directory)
            _MADE.discard(directory)
        for directory in sorted((d for d in _MADE if d.is_relative_to(self.base)),
                                key=lambda d: len(d.parts), reverse=True):
            if _rmdir(directory, tolerate_busy=True):
                _MADE.discard(directory)


def make_kubelet_container(base: Path | None = None, qos: str = "burstable",
                           pod_uid: str | None = None) -> KubeletContainer:
    """kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/
    cri-containerd-<id>.scope under `base` (default: the cgroup v2 mount; a
    subdirectory stands for a node of its own, as kind nests a node's kubelet)."""
    base = base or find_cgroup2_mount()
    pod_uid = pod_uid or str(uuid.uuid4())
    container_id = secrets.token_hex(32)
    directory = base
    for name in ("kubepods.slice", f"kubepods-{qos}.slice",
                 f"kubepods-{qos}-pod{pod_uid.replace('-', '_')}.slice",
                 f"cri-containerd-{container_id}.scope"):
        directory = directory / name
        if not directory.exists():
            directory.mkdir()
            _MADE.add(directory)
    return KubeletContainer(pod_uid, container_id, directory, base)


def _own_cgroup() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return "/"


def _evacuate(directory: Path, home: Path) -> None:
    if not directory.exists():
        return
    for pid in (directory / "cgroup.procs").read_text().split():
        try:
            (home / "cgroup.procs").write_text(pid)
        except ProcessLookupError:
            pass        # it exited meanwhile: nothing to move


def _rmdir(directory: Path, tolerate_busy: bool = False) -> bool:
    """Removes a cgroup; a process that just exited may keep it busy a moment."""
    deadline = time.monotonic() + 5
    while True:
        try:
            directory.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
            if tolerate_busy:
                return False       # another container of this test is still in it
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
