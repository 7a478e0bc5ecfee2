"""What the running kernel offers a gadget, read from files and one syscall:
its version, its tracefs and the events in it, its functions (kallsyms), and
whether its verifier takes the BPF atomic operations that came with Linux 5.12.
The environment checks, the choice of hooks and the loader all ask here."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from ig_metrics.gadgets.spec import Hook

# bpf(2) has no libc wrapper: its number per machine (asm/unistd*.h).
BPF_SYSCALL_NUMBERS = {
    "x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "ppc64": 361,
    "s390x": 351, "armv7l": 386, "armv6l": 386, "i686": 357, "i386": 357,
}
BPF_MAP_CREATE = 0
BPF_PROG_LOAD = 5
BPF_MAP_TYPE_ARRAY = 2
BPF_PROG_TYPE_SOCKET_FILTER = 1


@dataclass(frozen=True, slots=True)
class HostPaths:
    """Where the checks look. The defaults are the real host; tests point
    `root` at a directory laid out like one."""

    root: Path = Path("/")
    release: str = field(default_factory=lambda: os.uname().release)

    def at(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def proc_status(self) -> Path:
        return self.at("/proc/self/status")

    @property
    def mounts(self) -> Path:
        return self.at("/proc/self/mounts")

    @property
    def kallsyms(self) -> Path:
        return self.at("/proc/kallsyms")

    @property
    def tracefs_candidates(self) -> tuple[Path, ...]:
        """Where bcc looks for tracefs, in its order of preference."""
        return (self.at("/sys/kernel/debug/tracing"), self.at("/sys/kernel/tracing"))

    @property
    def btf(self) -> Path:
        return self.at("/sys/kernel/btf/vmlinux")

    @property
    def kheaders(self) -> Path:
        return self.at("/sys/kernel/kheaders.tar.xz")

    @property
    def modules(self) -> Path:
        return self.at(f"/lib/modules/{self.release}")

    def sysctl(self, name: str) -> Path:
        return self.at("/proc/sys/" + name.replace(".", "/"))


DEFAULT_PATHS = HostPaths()


def kernel_version(release: str) -> tuple[int, int, int]:
    """(6, 1, 0) from '6.1.0-27-amd64'; (0, 0, 0) for a release it cannot read."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if match is None:
        return (0, 0, 0)
    major, minor, patch = match.groups()
    return (int(major), int(minor), int(patch or 0))


def version_code(version: tuple[int, int, int]) -> int:
    """The kernel's KERNEL_VERSION(a, b, c); the patch level saturates at 255."""
    major, minor, patch = version
    return major << 16 | minor << 8 | min(patch, 255)


def find_tracefs(paths: HostPaths) -> Path | None:
    """The mounted tracefs bcc will use, or None."""
    return next((path for path in paths.tracefs_candidates if (path / "events").is_dir()), None)


def kprobes_available(paths: HostPaths) -> bool:
    """Whether this kernel has kprobes (tracefs must be mounted to tell)."""
    tracefs = find_tracefs(paths)
    return tracefs is not None and (tracefs / "kprobe_events").exists()


def hook_exists(hook: Hook, paths: HostPaths) -> bool:
    """Whether this kernel has the hook's target (tracefs mounted: else False)."""
    tracefs = find_tracefs(paths)
    if tracefs is None:
        return False
    events = tracefs / "events"
    if hook.kind == "tracepoint":
        return (events / hook.tracefs_path).is_dir()
    if hook.kind == "socket_filter":
        return True     # AF_PACKET sockets: part of every kernel that runs BPF
    if hook.kind in ("kprobe", "kretprobe"):
        return kprobes_available(paths) and has_kernel_symbol(paths.kallsyms, hook.target)
    if any(events.glob(f"*/{hook.target}")):
        return True
    # A bare tracepoint (DECLARE_TRACE) has no tracefs event; the kernel
    # attaches raw programs through its __bpf_trace_<name> stub.
    return has_kernel_symbol(paths.kallsyms, f"__bpf_trace_{hook.target}")


def has_kernel_symbol(kallsyms: Path, symbol: str) -> bool:
    try:
        text = kallsyms.read_bytes()
    except OSError:
        return False   # no kallsyms: nothing more to learn, the event check decided
    return f" {symbol}\n".encode() in text or f" {symbol}\t".encode() in text


def bpf_syscall(command: int, attr: ctypes.Array) -> int:
    """bpf(command, attr) for a file descriptor; raises OSError, or
    NotImplementedError on a machine whose syscall number is unknown here."""
    number = BPF_SYSCALL_NUMBERS.get(platform.machine())
    if number is None:
        raise NotImplementedError(f"no bpf() syscall number known for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(ctypes.c_long(number), ctypes.c_long(command),
                      ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def create_probe_map() -> None:
    """bpf(BPF_MAP_CREATE) for an array of one 4-byte value; raises OSError."""
    attr = (ctypes.c_uint32 * 18)()   # union bpf_attr: map_type, key_size, value_size,
    attr[0:4] = [BPF_MAP_TYPE_ARRAY, 4, 4, 1]   # max_entries; the rest must be zero
    os.close(bpf_syscall(BPF_MAP_CREATE, attr))


def _instruction(code: int, dst: int = 0, src: int = 0, offset: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn (little-endian machines: dst_reg in the low nibble)."""
    return (bytes([code, src << 4 | dst]) + offset.to_bytes(2, "little", signed=True)
            + imm.to_bytes(4, "little", signed=True))


# *(u64 *)(r10 - 8) = 0; r1 = 1; r0 = 0; r0 = cmpxchg(r10 - 8, r0, r1); exit.
# Compare-and-swap is BPF_STX | BPF_ATOMIC | BPF_DW with imm BPF_CMPXCHG (0xf1),
# which verifiers before Linux 5.12 refuse ("BPF_STX uses reserved fields").
_CMPXCHG_PROGRAM = b"".join((
    _instruction(0x7a, dst=10, offset=-8),
    _instruction(0xb7, dst=1, imm=1),
    _instruction(0xb7, dst=0),
    _instruction(0xdb, dst=10, src=1, offset=-8, imm=0xf1),
    _instruction(0xb7, dst=0),
    _instruction(0x95),
))


@functools.cache
def verifier_takes_atomics() -> bool:
    """Whether the kernel loads a program using compare-and-swap (Linux 5.12+).
    False also where the probe cannot run: the gadgets' other way is correct
    everywhere, only slower when sockets or threads are first seen."""
    program = ctypes.create_string_buffer(_CMPXCHG_PROGRAM, len(_CMPXCHG_PROGRAM))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = (ctypes.c_uint64 * 16)()   # union bpf_attr, BPF_PROG_LOAD's part
    attr[0] = BPF_PROG_TYPE_SOCKET_FILTER | (len(_CMPXCHG_PROGRAM) // 8) << 32
    attr[1] = ctypes.addressof(program)
    attr[2] = ctypes.addressof(license_)
    try:
        os.close(bpf_syscall(BPF_PROG_LOAD, attr))
    except (OSError, NotImplementedError):
        return False
    return True
