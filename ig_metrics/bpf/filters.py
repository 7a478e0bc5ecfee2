"""Which processes a run looks at (`--pid`, `--comm`, `--cgroup`), applied in
the kernel: the loader compiles the gadget with -DIG_FILTERED and fills the
`ig_filter` maps of ig_metrics.h before anything is attached."""

from __future__ import annotations

import ctypes as ct
import os
from dataclasses import dataclass, field
from pathlib import Path

MAX_PIDS = 16                 # IG_FILTER_MAX_PIDS in ig_metrics.h
COMM_LENGTH = 15              # the kernel keeps 15 characters of a command name
CGROUP2_SUPER_MAGIC = 0x63677270


class FilterError(ValueError):
    """A filter that cannot work, with what to do instead."""


@dataclass(frozen=True)
class ProcessFilter:
    pids: tuple[int, ...] = ()
    comm: str | None = None
    cgroup: Path | None = None      # a cgroup v2 directory
    _cgroup_fd: list[int] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.pids) > MAX_PIDS:
            raise FilterError(f"--pid: at most {MAX_PIDS} processes, got {len(self.pids)}")
        for pid in self.pids:
            if pid <= 0:
                raise FilterError(f"--pid: {pid} is not a process id")
        if self.comm is not None and not 0 < len(self.comm.encode()) <= COMM_LENGTH:
            raise FilterError(f"--comm: '{self.comm}' must be 1 to {COMM_LENGTH} bytes, "
                              "as the kernel keeps command names (see /proc/PID/comm)")
        if self.cgroup is not None:
            check_cgroup_v2(self.cgroup)

    @property
    def active(self) -> bool:
        return bool(self.pids or self.comm or self.cgroup)

    def cflags(self) -> tuple[str, ...]:
        return ("-DIG_FILTERED",) if self.active else ()

    def apply(self, bpf) -> None:
        """Fill the filter maps of a loaded (not yet attached) program."""
        if not self.active:
            return
        table = bpf.get_table(b"ig_filter")
        value = table.Leaf()
        value.npids = len(self.pids)
        for index, pid in enumerate(self.pids):
            value.pids[index] = pid
        if self.comm:
            raw = self.comm.encode().ljust(16, b"\0")
            value.comm[0] = int.from_bytes(raw[:8], "little")
            value.comm[1] = int.from_bytes(raw[8:], "little")
            value.comm_set = 1
        if self.cgroup is not None:
            fd = os.open(self.cgroup, os.O_RDONLY | os.O_DIRECTORY)
            self._cgroup_fd.append(fd)
            bpf.get_table(b"ig_filter_cgroup")[ct.c_int(0)] = fd
            value.cgroup_set = 1
        table[ct.c_int(0)] = value

    def close(self) -> None:
        while self._cgroup_fd:
            os.close(self._cgroup_fd.pop())

    def keeps(self, pid: int) -> bool:
        """The same decision taken in user space, for state read from /proc."""
        if self.pids and pid not in self.pids:
            return False
        if self.comm and _read(f"/proc/{pid}/comm").strip() != self.comm:
            return False
        if self.cgroup is not None:
            mount = cgroup2_mount(self.cgroup)
            assert mount is not None      # __post_init__ checked: on a cgroup v2 file system
            relative = "/" + str(self.cgroup.relative_to(mount))
            own = next((line.split(":", 2)[2] for line in _read(f"/proc/{pid}/cgroup")
                        .splitlines() if line.startswith("0::")), None)
            if own is None or not (own == relative or own.startswith(relative.rstrip("/") + "/")):
                return False
        return True

    def describe(self) -> str:
        parts = [f"pid {', '.join(map(str, self.pids))}" if self.pids else "",
                 f"command {self.comm}" if self.comm else "",
                 f"cgroup {self.cgroup}" if self.cgroup else ""]
        return " and ".join(part for part in parts if part) or "every process"


def check_cgroup_v2(path: Path) -> None:
    if not path.is_dir():
        raise FilterError(f"--cgroup: {path} is not a directory; give a cgroup v2 "
                          "directory, e.g. /sys/fs/cgroup/system.slice/nginx.service")
    if _filesystem_magic(path) != CGROUP2_SUPER_MAGIC:
        raise FilterError(f"--cgroup: {path} is not on a cgroup v2 file system "
                          f"(cgroup v2 is mounted at {cgroup2_mount(None) or 'no place here'})")


def cgroup2_mount(path: Path | None) -> Path | None:
    """The cgroup v2 mount point (the one holding `path`, if given)."""
    best = None
    for line in _read("/proc/self/mounts").splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            mount = Path(fields[1])
            if path is None or Path(path).resolve().is_relative_to(mount):
                if best is None or len(str(mount)) > len(str(best)):
                    best = mount
    return best


def _filesystem_magic(path: Path) -> int:
    class StatFs(ct.Structure):
        _fields_ = [("f_type", ct.c_long), ("rest", ct.c_byte * 120)]

    libc = ct.CDLL(None, use_errno=True)
    buffer = StatFs()
    if libc.statfs(str(path).encode(), ct.byref(buffer)) != 0:
        raise FilterError(f"--cgroup: cannot read {path}: {os.strerror(ct.get_errno())}")
    return buffer.f_type & 0xFFFFFFFF


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""
