"""cgroup id (what bpf_get_current_cgroup_id() returns: the inode number of the
cgroup's directory in the v2 hierarchy) to its path, and on to the container and
pod attributes the path names. Built for the decoders' hot path: a known id is
one dict lookup; an unknown one costs one syscall or one walk of the hierarchy."""

from __future__ import annotations

import ctypes
import errno
import logging
import math
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

from ig_metrics.bpf.cgroupfs import find_cgroup2_mount
from ig_metrics.k8s.containers import CgroupIdentity, identify
from ig_metrics.model.snapshot import Attributes

log = logging.getLogger("ig_metrics.k8s")

DEFAULT_MAX_ENTRIES = 65536        # cgroups remembered; a busy node has a few thousand
DEFAULT_MIN_WALK_INTERVAL = 0.2    # seconds between two walks, whatever asks for them
FILEID_KERNFS = 0xFE               # file handle type of kernfs: 8 bytes, the node id
ROOT = "/"


class _Unavailable:
    """open_by_handle_at cannot be used here (no CAP_DAC_READ_SEARCH, or seccomp)."""


UNAVAILABLE = _Unavailable()


class CgroupPaths:
    """cgroup id -> path relative to the v2 mount ("/kubepods.slice/…"), cached.

    An unknown id is first asked of `recorded` when set (the paths the kernel
    recorded as cgroups were made, k8s/cgrouprecorder.py: it knows cgroups
    that are gone already), then looked up with open_by_handle_at(2) when
    this process may (root on a host: CAP_DAC_READ_SEARCH), else by walking
    the hierarchy, which records every cgroup at once. cgroup ids only grow (the kernel allocates
    them in order and never reuses one), and an id is asked about only after the
    kernel saw a process in that cgroup, so a walk started after the question
    sees every cgroup up to that id that still exists: later questions about a
    smaller id that the walk did not find are answered "gone" without walking
    again. A walk of 5,000 cgroups takes ~0.1 s here (docs/kubernetes.md).

    Not thread-safe: one per sampler.
    """

    def __init__(self, mount: Path | None = None, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 use_handles: bool = True,
                 min_walk_interval: float = DEFAULT_MIN_WALK_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.mount = Path(mount) if mount is not None else find_cgroup2_mount()
        self.max_entries = max_entries
        self.min_walk_interval = min_walk_interval
        self._clock = clock
        self._paths: dict[int, str] = {}
        self._gone: dict[int, None] = {}    # ids a handle lookup found gone (insertion-ordered)
        # Every cgroup with an id in [floor, horizon] that existed when the last
        # walk began is in _paths; floor rises only when the cache overflows.
        self._horizon = 0
        self._floor = 0
        self._last_walk = -math.inf
        self._handles: _HandleOpener | None = _HandleOpener(self.mount) if use_handles else None
        self._warned_full = False
        self.walks = 0                     # how many walks were made (tests, self-metrics)
        # cgroup id -> path of a cgroup made since the recorder started; read
        # once per id, then cached here like any other answer.
        self.recorded: Callable[[int], str | None] | None = None

    def __len__(self) -> int:
        return len(self._paths)

    def path(self, cgroup_id: int) -> str | None:
        """The path of a cgroup that exists (or existed when last seen); None
        when it is gone, or unknown for now (walks are at most one per
        min_walk_interval)."""
        path = self._paths.get(cgroup_id)
        if path is not None:
            return path
        if self.recorded is not None:
            # Before any conclusion a walk or a handle drew: the cgroup may
            # have come and gone since.
            path = self.recorded(cgroup_id)
            if path is not None:
                self._remember(cgroup_id, path)
                return path
        if cgroup_id in self._gone:
            return None
        if self._floor <= cgroup_id <= self._horizon:
            return None
        if self._handles is not None:
            found = self._handles.path_of(cgroup_id)
            if isinstance(found, _Unavailable):
                log.debug("cgroup ids: open_by_handle_at not permitted; walking %s instead",
                          self.mount)
                self._handles.close()
                self._handles = None
            elif found is None:
                self._remember_gone(cgroup_id)
                return None
            else:
                self._remember(cgroup_id, found)
                return found
        return self._walk_for(cgroup_id)

    def known_gone(self, cgroup_id: int) -> bool:
        """True when `cgroup_id` is known not to exist (any more): a walk that
        began after the kernel made it did not find it, or open_by_handle_at
        said so. False for a cgroup that exists, or not asked about yet."""
        if cgroup_id in self._paths:
            return False
        return cgroup_id in self._gone or self._floor <= cgroup_id <= self._horizon

    def refresh(self) -> None:
        """Walk the whole hierarchy now (the first lookups then cost nothing)."""
        self._walk(0)

    def close(self) -> None:
        if self._handles is not None:
            self._handles.close()
            self._handles = None

    # --- walking ---------------------------------------------------------------------
    def _walk_for(self, cgroup_id: int) -> str | None:
        if self._clock() - self._last_walk < self.min_walk_interval:
            return None
        self._walk(cgroup_id)
        return self._paths.get(cgroup_id)

    def _walk(self, asked: int) -> None:
        self._last_walk = self._clock()
        found = walk_cgroups(self.mount)
        self.walks += 1
        self._floor = 0
        if len(found) > self.max_entries:
            self._warn_full(len(found))
            # Keep the newest cgroups: running containers are younger than the
            # host's own services, and the oldest ids are the likeliest gone.
            kept = sorted(found)[-self.max_entries:]
            self._floor = kept[0]
            found = {cgroup_id: found[cgroup_id] for cgroup_id in kept}
        self._paths = found
        self._horizon = max(self._horizon, asked)

    def _remember(self, cgroup_id: int, path: str) -> None:
        if len(self._paths) >= self.max_entries:
            oldest = min(self._paths)
            del self._paths[oldest]
            self._floor = max(self._floor, oldest + 1)
            self._warn_full(self.max_entries)
        self._paths[cgroup_id] = path

    def _remember_gone(self, cgroup_id: int) -> None:
        if len(self._gone) >= self.max_entries:
            del self._gone[next(iter(self._gone))]
        self._gone[cgroup_id] = None

    def _warn_full(self, count: int) -> None:
        if not self._warned_full:
            self._warned_full = True
            log.warning("more cgroups than the %d the cgroup cache keeps (%d seen): the "
                        "oldest are looked up again when asked for; raise max_entries",
                        self.max_entries, count)


def walk_cgroups(mount: Path) -> dict[int, str]:
    """Every cgroup under `mount`: id -> path relative to it ("/" for the root).

    readdir gives each entry's inode number, which for kernfs is the cgroup id,
    so no directory is stat()ed but the root."""
    found = {os.stat(mount).st_ino: ROOT}
    pending = [(str(mount), "")]
    while pending:
        directory, relative = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        child = f"{relative}/{entry.name}"
                        found[entry.inode()] = child
                        pending.append((entry.path, child))
        except FileNotFoundError:
            continue      # removed since its parent was listed: nothing left to find in it
    return found


class _HandleOpener:
    """open_by_handle_at(2) on the cgroup mount: a cgroup id is its kernfs file
    handle, so the directory opens directly and /proc/self/fd names its path."""

    _libc: ctypes.CDLL | None = None

    class _FileHandle(ctypes.Structure):
        _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                    ("f_handle", ctypes.c_ubyte * 8)]

    def __init__(self, mount: Path) -> None:
        self.mount = str(mount)
        self._mount_fd: int | None = None

    def path_of(self, cgroup_id: int) -> str | None | _Unavailable:
        libc = _HandleOpener._libc
        if libc is None:
            libc = _HandleOpener._libc = ctypes.CDLL(None, use_errno=True)
        if self._mount_fd is None:
            self._mount_fd = os.open(self.mount, os.O_RDONLY | os.O_DIRECTORY)
        handle = self._FileHandle(8, FILEID_KERNFS)
        handle.f_handle[:] = list(struct.pack("<Q", cgroup_id))
        fd = libc.open_by_handle_at(self._mount_fd, ctypes.byref(handle),
                                    os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            if code in (errno.ESTALE, errno.ENOENT):
                return None
            if code in (errno.EPERM, errno.EACCES, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                return UNAVAILABLE
            raise OSError(code, f"open_by_handle_at(cgroup id {cgroup_id}) on {self.mount}: "
                                f"{os.strerror(code)}")
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        if target == self.mount:
            return ROOT
        if not target.startswith(self.mount + "/"):
            return UNAVAILABLE   # seen through another mount of the hierarchy: let a walk decide
        return target[len(self.mount):]

    def close(self) -> None:
        if self._mount_fd is not None:
            os.close(self._mount_fd)
            self._mount_fd = None


class CgroupResolver:
    """cgroup id -> (container.id, container.runtime.name, k8s.pod.uid) as far as
    the cgroup's path names them; () for a host process or a gone cgroup.

    `attributes()` is what decoders call per key: a dict lookup once an id has
    been seen. Not thread-safe: one per sampler."""

    def __init__(self, paths: CgroupPaths | None = None, *,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.paths = paths if paths is not None else CgroupPaths(max_entries=max_entries)
        self.max_entries = max_entries
        self._attributes: dict[int, Attributes] = {}
        self._identities: dict[int, CgroupIdentity] = {}

    def attributes(self, cgroup_id: int) -> Attributes:
        cached = self._attributes.get(cgroup_id)
        if cached is not None:
            return cached
        identity = self.identity(cgroup_id)
        return () if identity is None else self._attributes[cgroup_id]

    def identity(self, cgroup_id: int) -> CgroupIdentity | None:
        """None while the cgroup's path is unknown (gone, or not walked yet)."""
        identity = self._identities.get(cgroup_id)
        if identity is not None:
            return identity
        path = self.paths.path(cgroup_id)
        if path is None:
            return None
        identity = identify(path)
        if len(self._identities) >= self.max_entries:
            oldest = next(iter(self._identities))
            del self._identities[oldest]
            self._attributes.pop(oldest, None)
        self._identities[cgroup_id] = identity
        self._attributes[cgroup_id] = identity.attributes()
        return identity

    def close(self) -> None:
        self.paths.close()


def proc_cgroup_path(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The cgroup v2 path of a process from /proc/PID/cgroup; on a host with
    no v2 hierarchy, the path its v1 hierarchies agree on (name=systemd first)."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path           # "" is the v2 hierarchy's line, 0::/path
    v2 = paths.get("")
    # On a hybrid host a runtime that manages only v1 leaves its containers at
    # the v2 root: the v1 path then says more.
    if v2 is not None and (v2 != ROOT or len(paths) == 1):
        return v2
    return paths.get("name=systemd", next(iter(paths.values()), None))


def identify_process(pid: int, proc: Path = Path("/proc")) -> CgroupIdentity | None:
    """The container and pod of a running process, from /proc (no BPF needed)."""
    path = proc_cgroup_path(pid, proc)
    return None if path is None else identify(path)
