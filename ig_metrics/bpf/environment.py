"""What running a gadget needs from this host, checked as data: each Check says
what was found and, for a miss, how to fix it. `ig-metrics doctor` shows every
check; `ig-metrics run` calls preflight() to refuse early, before it attaches
anything. Every check reads files or makes one syscall: all together take well
under a second (`compile_checks`, which runs the compiler, is the exception)."""

from __future__ import annotations

import ctypes
import errno
import importlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ig_metrics.bpf.loader import GadgetLoadError, GadgetProgram
from ig_metrics.gadgets.spec import GadgetSpec, Hook

SETUP_HINT = "scripts/setup.sh does this"
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
DEBUGFS_MOUNTPOINT = "/sys/kernel/debug"
MOUNT_TRACEFS = "mount -t tracefs nodev /sys/kernel/tracing"
MOUNT_DEBUGFS = f"mount -t debugfs nodev {DEBUGFS_MOUNTPOINT}"

# Bits of the capability sets in /proc/<pid>/status (linux/capability.h).
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

# bpf(2) has no libc wrapper: its number per machine (asm/unistd*.h).
BPF_SYSCALL_NUMBERS = {
    "x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "ppc64": 361,
    "s390x": 351, "armv7l": 386, "armv6l": 386, "i686": 357, "i386": 357,
}
BPF_MAP_CREATE = 0
BPF_MAP_TYPE_ARRAY = 2


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: `ok` says whether what was checked is present or enabled;
    only a `required` check that is not ok stops a gadget from running."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def status(self) -> str:
        """"ok" or "fail" for a required check, "info" for the others."""
        if not self.required:
            return "info"
        return "ok" if self.ok else "fail"

    @property
    def blocking(self) -> bool:
        return self.required and not self.ok

    @property
    def problem(self) -> str:
        """The miss and its fix in one line, for `run` to print."""
        return f"{self.detail}; {self.fix}" if self.fix else self.detail

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "ok": self.ok,
                "required": self.required, "detail": self.detail, "fix": self.fix}


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


# --- required: without these no gadget runs ------------------------------------------

def check_privileges(paths: HostPaths) -> Check:
    """Root, or the two capabilities that replace it for BPF tracing."""
    try:
        status = _status_fields(paths.proc_status)
    except OSError as error:
        return Check("privileges", False, f"cannot read {paths.proc_status}: {error.strerror}",
                     "run on Linux with /proc mounted")
    uid = int(status.get("Uid", "-1 -1").split()[1])
    effective = int(status.get("CapEff", "0"), 16)
    held = [name for name, bit in (("CAP_SYS_ADMIN", CAP_SYS_ADMIN), ("CAP_BPF", CAP_BPF),
                                   ("CAP_PERFMON", CAP_PERFMON)) if effective >> bit & 1]
    ok = "CAP_SYS_ADMIN" in held or {"CAP_BPF", "CAP_PERFMON"} <= set(held)
    who = "root (uid 0)" if uid == 0 else f"uid {uid}"
    if ok:
        detail = f"{who} with {', '.join(held)}"
        if uid != 0:
            detail += " (tracefs must also be readable by this user)"
        return Check("privileges", True, detail)
    lacking = "CAP_SYS_ADMIN or both CAP_BPF and CAP_PERFMON"
    detail = (f"{who} but without {lacking} (a container without privileges?)" if uid == 0
              else f"{who} without {lacking}")
    return Check("privileges", False, detail,
                 "run as root (sudo), or grant CAP_BPF and CAP_PERFMON (docker: --cap-add BPF "
                 "--cap-add PERFMON; Kubernetes: securityContext.capabilities.add)")


def _status_fields(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def check_bcc(module: str = "bcc", dist_packages: Path = DEBIAN_DIST_PACKAGES) -> Check:
    """bcc's Python package, which is not on PyPI: Debian ships it in dist-packages."""
    try:
        bcc = importlib.import_module(module)
    except (ImportError, OSError) as error:   # OSError: the package is there, libbcc.so is not
        return Check("bcc", False, f"{sys.executable} cannot import {module}: {error}",
                     _bcc_fix(module, dist_packages))
    version = getattr(bcc, "__version__", "of unknown version")
    return Check("bcc", True, f"bcc {version} from {Path(bcc.__file__).parent}")


def _bcc_fix(module: str, dist_packages: Path) -> str:
    if (dist_packages / module).is_dir():
        return (f"bcc is installed in {dist_packages} but this Python does not see it: use a "
                "venv made with '/usr/bin/python3 -m venv --system-site-packages' "
                f"({SETUP_HINT} in .venv)")
    return f"install Debian's bcc: apt-get install python3-bpfcc bpfcc-tools ({SETUP_HINT})"


def check_bpf_syscall(create_map: Callable[[], None] | None = None) -> Check:
    """The kernel accepts bpf(): creates, then closes, a one-entry array map.
    `create_map` stands in for that syscall in tests."""
    try:
        (create_map or create_probe_map)()
    except NotImplementedError as error:
        return Check("bpf-syscall", True, f"not checked: {error}")
    except OSError as error:
        return Check("bpf-syscall", False, f"the kernel refused bpf(BPF_MAP_CREATE): "
                     f"{error.strerror} ({errno.errorcode.get(error.errno, error.errno)})",
                     _bpf_syscall_fix(error.errno))
    return Check("bpf-syscall", True, "bpf() works: created and closed a one-entry map")


def _bpf_syscall_fix(code: int | None) -> str:
    if code == errno.ENOSYS:
        return "use a kernel built with CONFIG_BPF_SYSCALL=y"
    if code == errno.EPERM:
        return ("run as root with CAP_BPF (a container also needs seccomp to allow bpf(), "
                "e.g. docker --privileged)")
    return "see dmesg for what the kernel says about bpf()"


def create_probe_map() -> None:
    """bpf(BPF_MAP_CREATE) for an array of one 4-byte value; raises OSError."""
    number = BPF_SYSCALL_NUMBERS.get(platform.machine())
    if number is None:
        raise NotImplementedError(f"no bpf() syscall number known for {platform.machine()}")
    attr = (ctypes.c_uint32 * 18)()   # union bpf_attr: map_type, key_size, value_size,
    attr[0:4] = [BPF_MAP_TYPE_ARRAY, 4, 4, 1]   # max_entries; the rest must be zero
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(ctypes.c_long(number), ctypes.c_long(BPF_MAP_CREATE),
                      ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    os.close(fd)


def find_tracefs(paths: HostPaths) -> Path | None:
    """The mounted tracefs bcc will use, or None."""
    return next((path for path in paths.tracefs_candidates if (path / "events").is_dir()), None)


def check_tracefs(paths: HostPaths) -> Check:
    tracefs = find_tracefs(paths)
    if tracefs is None:
        looked = " and ".join(str(path) for path in paths.tracefs_candidates)
        return Check("tracefs", False, f"tracefs is not mounted (no events/ in {looked})",
                     f"mount it: {MOUNT_TRACEFS} ({SETUP_HINT})")
    return Check("tracefs", True, f"mounted at {tracefs}")


def check_kernel_headers(paths: HostPaths) -> Check:
    """bcc compiles every gadget against /lib/modules/<release>/build (and source)."""
    build, source = paths.modules / "build", paths.modules / "source"
    if not (build / "include").is_dir():
        if paths.kheaders.is_file():
            return Check("kernel-headers", True,
                         f"no {build}; bcc extracts the kernel's own headers from {paths.kheaders}")
        return Check("kernel-headers", False, f"no kernel headers for bcc: {_missing(build)}",
                     _headers_fix(paths))
    if not any((tree / "include" / "linux").is_dir() for tree in (build, source)):
        return Check("kernel-headers", False,
                     f"{build} has no include/linux and {source} does not provide it",
                     _headers_fix(paths))
    return Check("kernel-headers", True, _describe_headers(build, source, paths.release))


def _missing(build: Path) -> str:
    if build.is_symlink() and not build.exists():
        return f"{build} is a broken link to {os.readlink(build)}"
    if build.exists():
        return f"{build} has no include/"
    return f"{build} does not exist"


def _headers_fix(paths: HostPaths) -> str:
    return (f"apt-get install linux-headers-{paths.release} if your distribution has it; "
            "otherwise install linux-headers-$(dpkg --print-architecture) and link "
            f"{paths.modules}/build to its -<arch> tree and source to its -common tree "
            f"({SETUP_HINT})")


def _describe_headers(build: Path, source: Path, release: str) -> str:
    if not build.is_symlink():
        return str(build)
    target = build.resolve()
    detail = f"{build} -> {target}"
    if source.is_symlink():
        detail += f", source -> {source.resolve()}"
    if release not in target.name:
        detail += (f"; these are another kernel's headers than {release}: expected here and "
                   "fine, the gadgets read only what the tracepoint formats give")
    return detail


def check_gadget_hooks(spec: GadgetSpec, paths: HostPaths) -> Check:
    """Every tracepoint and raw tracepoint the gadget attaches to exists here."""
    name = f"tracepoints:{spec.name}"
    tracefs = find_tracefs(paths)
    if tracefs is None:
        return Check(name, False, f"cannot tell whether the {len(spec.hooks)} hooks of gadget "
                     f"{spec.name} exist: tracefs is not mounted",
                     f"mount it: {MOUNT_TRACEFS} ({SETUP_HINT})")
    missing = [_hook_label(hook) for hook in spec.hooks
               if not _hook_exists(hook, tracefs / "events", paths.kallsyms)]
    if missing:
        return Check(name, False, f"gadget {spec.name}: this kernel lacks {', '.join(missing)}",
                     f"run this gadget on a kernel that has them (see {tracefs}/events/)")
    kinds = [hook.kind for hook in spec.hooks]
    found = [_count(kinds.count(kind), kind.replace("_", " "))
             for kind in ("tracepoint", "raw_tracepoint", "socket_filter")
             if kinds.count(kind) or kind != "socket_filter"]
    return Check(name, True, f"all {len(spec.hooks)} hooks of gadget {spec.name} exist "
                             f"({', '.join(found)})")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _hook_label(hook: Hook) -> str:
    return hook.target if hook.kind == "tracepoint" else f"raw tracepoint {hook.target}"


def _hook_exists(hook: Hook, events: Path, kallsyms: Path) -> bool:
    if hook.kind == "tracepoint":
        return (events / hook.tracefs_path).is_dir()
    if hook.kind == "socket_filter":
        return True     # AF_PACKET sockets: part of every kernel that runs BPF
    if any(events.glob(f"*/{hook.target}")):
        return True
    # A bare tracepoint (DECLARE_TRACE) has no tracefs event; the kernel
    # attaches raw programs through its __bpf_trace_<name> stub.
    return _has_kernel_symbol(kallsyms, f"__bpf_trace_{hook.target}")


def _has_kernel_symbol(kallsyms: Path, symbol: str) -> bool:
    try:
        text = kallsyms.read_bytes()
    except OSError:
        return False   # no kallsyms: nothing more to learn, the event check decided
    return f" {symbol}\n".encode() in text or f" {symbol}\t".encode() in text


# --- informational: shown by doctor, never blocking -------------------------------

def check_btf(paths: HostPaths) -> Check:
    if paths.btf.is_file() and paths.btf.stat().st_size > 0:
        return Check("btf", True, f"{paths.btf} present", required=False)
    return Check("btf", False, f"no kernel BTF ({paths.btf}): the built-in gadgets do not need "
                 "it, CO-RE and fentry tools do", "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
                 required=False)


def check_debugfs(paths: HostPaths) -> Check:
    if _mount_types(paths.mounts).get(DEBUGFS_MOUNTPOINT) == "debugfs":
        return Check("debugfs", True, f"mounted at {DEBUGFS_MOUNTPOINT}", required=False)
    return Check("debugfs", False, "not mounted: gadgets do not need it when tracefs is "
                 "mounted; some bcc tools look for /sys/kernel/debug/tracing",
                 f"mount it: {MOUNT_DEBUGFS} ({SETUP_HINT})", required=False)


def _mount_types(mounts: Path) -> dict[str, str]:
    """Mount point -> file system type, from a /proc/<pid>/mounts file."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return {}   # no mount table: every mount check then reports "not mounted"
    types = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            types[fields[1].replace("\\040", " ")] = fields[2]
    return types


def check_kprobes(paths: HostPaths) -> Check:
    tracefs = find_tracefs(paths)
    if tracefs is None:
        return Check("kprobes", False, "unknown: tracefs is not mounted", required=False)
    if (tracefs / "kprobe_events").exists():
        return Check("kprobes", True, "available (the built-in gadgets do not use them)",
                     required=False)
    return Check("kprobes", False, f"this kernel has no kprobes (no {tracefs}/kprobe_events): "
                 "fine, the built-in gadgets use tracepoints only", required=False)


def check_bpf_stats(paths: HostPaths) -> Check:
    value = _read_sysctl(paths, "kernel.bpf_stats_enabled")
    if value is None:
        return Check("bpf-stats", False, "unknown: the kernel has no kernel.bpf_stats_enabled",
                     required=False)
    if value == "1":
        return Check("bpf-stats", True, "kernel.bpf_stats_enabled = 1: the kernel counts each "
                     "program's runs and run time (bpftool prog list shows them)", required=False)
    return Check("bpf-stats", False, f"kernel.bpf_stats_enabled = {value}: the kernel does not "
                 "count programs' run time", "sysctl kernel.bpf_stats_enabled=1 to measure what "
                 "a gadget costs per event (the counting costs a little too)", required=False)


def check_unprivileged_bpf(paths: HostPaths) -> Check:
    value = _read_sysctl(paths, "kernel.unprivileged_bpf_disabled")
    meaning = {"0": "users without CAP_BPF may call bpf()",
               "1": "only privileged users may call bpf(), until reboot",
               "2": "only privileged users may call bpf()"}
    if value is None:
        return Check("unprivileged-bpf", False,
                     "unknown: the kernel has no kernel.unprivileged_bpf_disabled", required=False)
    return Check("unprivileged-bpf", True, f"kernel.unprivileged_bpf_disabled = {value}: "
                 f"{meaning.get(value, 'unknown setting')} (ig-metrics runs privileged)",
                 required=False)


def _read_sysctl(paths: HostPaths, name: str) -> str | None:
    try:
        return paths.sysctl(name).read_text().strip()
    except OSError:
        return None   # the kernel lacks this knob; the caller says so


# --- entry points -------------------------------------------------------------------

def base_checks(paths: HostPaths | None = None) -> list[Check]:
    """The required checks every gadget depends on."""
    paths = paths or DEFAULT_PATHS
    return [check_privileges(paths), check_bcc(), check_bpf_syscall(),
            check_tracefs(paths), check_kernel_headers(paths)]


def info_checks(paths: HostPaths | None = None) -> list[Check]:
    paths = paths or DEFAULT_PATHS
    return [check_btf(paths), check_debugfs(paths), check_kprobes(paths),
            check_bpf_stats(paths), check_unprivileged_bpf(paths)]


def run_checks(specs: Iterable[GadgetSpec], paths: HostPaths | None = None) -> list[Check]:
    """Every check: the required ones first (one per gadget for its hooks), then
    the informational ones."""
    paths = paths or DEFAULT_PATHS
    return [*base_checks(paths), *(check_gadget_hooks(spec, paths) for spec in specs),
            *info_checks(paths)]


def preflight(spec: GadgetSpec | None = None, paths: HostPaths | None = None) -> list[str]:
    """What stops `spec` (or, without one, any gadget) from running here: one
    line per problem, with its fix; empty when it can run."""
    paths = paths or DEFAULT_PATHS
    checks = base_checks(paths)
    if spec is not None and find_tracefs(paths) is not None:   # else the tracefs line says it
        checks.append(check_gadget_hooks(spec, paths))
    return [check.problem for check in checks if check.blocking]


def compile_checks(specs: Iterable[GadgetSpec]) -> list[Check]:
    """Compile each gadget and have the verifier accept its programs, without
    attaching them (seconds per gadget: doctor --compile only)."""
    return [_compile_check(spec) for spec in specs]


def _compile_check(spec: GadgetSpec) -> Check:
    name = f"compile:{spec.name}"
    program = GadgetProgram(spec)
    started = time.monotonic()
    try:
        program.load()
    except GadgetLoadError as error:
        return Check(name, False, str(error),
                     f"fix the program in {spec.program}, or the environment check it points at")
    finally:
        program.close()
    return Check(name, True, f"compiled, and the verifier accepted its "
                             f"{len(spec.active_hooks)} programs in "
                             f"{time.monotonic() - started:.1f} s (not attached)")
