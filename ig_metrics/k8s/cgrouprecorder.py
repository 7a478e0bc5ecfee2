"""The paths of the cgroups made while a gadget runs, recorded in the kernel as
each is made (cgroup_paths.bpf.c on the cgroup:cgroup_mkdir tracepoint): a
container whose cgroup is removed before the sampler first reads its counts (a
Job, an init container, a crash loop, a long --interval) still resolves to its
container and pod. Optional: without it, cgroups resolve as they are found in
the hierarchy when first asked about."""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

from ig_metrics.bpf.environment import DEFAULT_PATHS, HostPaths, find_tracefs
from ig_metrics.bpf.loader import captured_stderr
from ig_metrics.bpf.maps import MapReader
from ig_metrics.bpf.memory import release_compiler_memory

log = logging.getLogger("ig_metrics.k8s")

PROGRAM = Path(__file__).with_name("cgroup_paths.bpf.c")
TRACEPOINT = "cgroup:cgroup_mkdir"
FUNCTION = "on_cgroup_mkdir"
MAP = "cgroup_paths"
# Since Linux 5.5 the tracepoint's id is the cgroup id BPF programs see (the
# cgroup directory's kernfs node id); before, an int numbering cgroups apart.
ID_FIELD = "field:u64 id;"
ROOT_CGROUP_ID = 1                 # kernfs numbers a hierarchy's root directory 1
WITHOUT = ("a container whose cgroup is removed before its counts are first read is "
           "attributed to no container")


class RecorderUnavailable(Exception):
    """Why new cgroups' paths cannot be recorded here; attribution goes on without."""


def tracepoint_problem(paths: HostPaths = DEFAULT_PATHS) -> str | None:
    """None when this kernel's cgroup:cgroup_mkdir gives what the recorder
    reads, else why it does not (for the log, and for doctor)."""
    tracefs = find_tracefs(paths)
    if tracefs is None:
        return "tracefs is not mounted"
    category, event = TRACEPOINT.split(":")
    fmt = tracefs / "events" / category / event / "format"
    try:
        text = fmt.read_text()
    except FileNotFoundError:
        return f"this kernel has no {TRACEPOINT} tracepoint"
    except OSError as error:
        return f"cannot read {fmt}: {error.strerror}"
    if ID_FIELD not in text:
        return (f"this kernel's {TRACEPOINT} does not give the cgroup id BPF programs see "
                "(Linux 5.5 and later do)")
    return None


class CgroupRecorder:
    """cgroup_paths.bpf.c, compiled and verified; `attach()` starts recording,
    `path(id)` is then the path (relative to `mount`) of a cgroup v2 cgroup
    made since, gone or not; None for any other. Raises RecorderUnavailable
    when it cannot load or attach."""

    def __init__(self, mount: Path, paths: HostPaths = DEFAULT_PATHS) -> None:
        problem = tracepoint_problem(paths)
        if problem is not None:
            raise RecorderUnavailable(problem)
        self.mount = mount
        # What comes before the part under the mount in the paths the kernel
        # gives (from the hierarchy's root): nothing when the mount shows the
        # whole hierarchy (a host; the DaemonSet, which mounts the node's). A
        # mount of a subtree (inside a kind node) tells it only once a
        # recorded cgroup is found under it.
        self._prefix: str | None = "" if os.stat(mount).st_ino == ROOT_CGROUP_ID else None
        self._bpf = _load()
        table = self._bpf.get_table(MAP.encode())
        self._value = table.Leaf
        self._capacity = table.Leaf.path.size
        self._reader = MapReader(table, MAP)

    def attach(self) -> None:
        try:
            with captured_stderr():
                self._bpf.attach_tracepoint(tp=TRACEPOINT.encode(), fn_name=FUNCTION.encode())
        except Exception as error:      # bcc raises plain Exception
            raise RecorderUnavailable(f"cannot attach {FUNCTION} to {TRACEPOINT}: "
                                      f"{error}") from error

    def path(self, cgroup_id: int) -> str | None:
        raw = self._reader.lookup(struct.pack("=Q", cgroup_id))
        if raw is None:
            return None
        value = self._value.from_buffer_copy(raw)
        if value.size > self._capacity:
            return None                 # cut: the hierarchy may still say
        return self._under_mount(os.fsdecode(value.path), cgroup_id)

    def close(self) -> None:
        """Detach and release the program and its map (idempotent)."""
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def _under_mount(self, recorded: str, cgroup_id: int) -> str | None:
        if self._prefix is None:
            self._prefix = self._learn_prefix(recorded, cgroup_id)
            if self._prefix is None:
                return None
        if not self._prefix:
            return recorded
        if recorded.startswith(self._prefix + "/"):
            return recorded[len(self._prefix):]
        return None                     # outside the mount: a walk would not find it either

    def _learn_prefix(self, recorded: str, cgroup_id: int) -> str | None:
        """The part of `recorded` above the mount, when the cgroup is still
        there to show which of its ends is under the mount."""
        start = 0
        while start >= 0:
            try:
                if os.stat(f"{self.mount}{recorded[start:]}").st_ino == cgroup_id:
                    return recorded[:start]
            except OSError:
                pass                    # not this end (or the cgroup is gone): try a shorter one
            start = recorded.find("/", start + 1)
        return None


def _load():
    """The program compiled and accepted by the verifier, not attached yet."""
    try:
        from bcc import BPF
    except ImportError as error:
        raise RecorderUnavailable(f"bcc cannot be imported: {error}") from error

    # As before a gadget's compile: what loading LLVM touched goes first,
    # else it adds to the peak of memory that compiling makes.
    release_compiler_memory()
    bpf = None
    failure: Exception | None
    with captured_stderr() as output:
        try:
            bpf = BPF(text=PROGRAM.read_bytes())
            bpf.load_func(FUNCTION.encode(), BPF.TRACEPOINT)
        except Exception as error:      # bcc raises plain Exception
            failure = error
        else:
            failure = None
    if failure is not None:
        if bpf is not None:
            bpf.cleanup()
        said = [line for line in output if line.strip()][-3:]
        raise RecorderUnavailable(f"{PROGRAM.name} does not load ({failure}"
                                  f"{': ' + ' / '.join(said) if said else ''})") from failure
    return bpf


def start_recorder(mount: Path) -> CgroupRecorder | None:
    """The recorder, compiled and verified; None, said in the log once, when it
    cannot run here (attribution then goes on without it)."""
    try:
        return CgroupRecorder(mount)
    except RecorderUnavailable as error:
        log.warning("attribution: the paths of new cgroups are not recorded (%s): %s",
                    error, WITHOUT)
        return None
