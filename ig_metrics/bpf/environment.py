"""What running a gadget needs from this host, checked as data: each Check says
what was found and, for a miss, how to fix it. `ig-metrics doctor` shows every
check; `ig-metrics run` calls preflight() to refuse early, before it attaches
anything. Every check reads files or makes one syscall: all together take well
under a second (`compile_checks`, which runs the compiler, is the exception)."""

from __future__ import annotations

import errno
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ig_metrics.bpf.hookplan import HookPlan, plan_hooks
from ig_metrics.bpf.kernel import (
    DEFAULT_PATHS,
    HostPaths,
    create_probe_map,
    find_tracefs,
    kernel_version,
    kprobes_available,
)
from ig_metrics.bpf.loader import GadgetLoadError, GadgetProgram
from ig_metrics.gadgets import PROVEN_SINCE, GadgetSpec, is_builtin

__all__ = ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "Check", "HostPaths", "base_checks",
           "check_bcc", "check_bpf_stats", "check_bpf_syscall", "check_debugfs",
           "check_gadget_hooks", "check_gadget_loads", "check_kernel_headers", "check_kprobes",
           "check_privileges", "check_tracefs", "compile_checks", "info_checks", "preflight",
           "run_checks"]

SETUP_HINT = "scripts/setup.sh does this"
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
DEBUGFS_MOUNTPOINT = "/sys/kernel/debug"
MOUNT_TRACEFS = "mount -t tracefs nodev /sys/kernel/tracing"
MOUNT_DEBUGFS = f"mount -t debugfs nodev {DEBUGFS_MOUNTPOINT}"

# Bits of the capability sets in /proc/<pid>/status (linux/capability.h).
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

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
    # no __file__: a namespace package
    where = Path(bcc.__file__).parent if bcc.__file__ is not None else module
    return Check("bcc", True, f"bcc {version} from {where}")


def _bcc_fix(module: str, dist_packages: Path) -> str:
    if (dist_packages / module).is_dir():
        return (f"bcc is installed in {dist_packages} but this Python does not see it: use a "
                "venv made with '/usr/bin/python3 -m venv --system-site-packages' "
                f"({SETUP_HINT} in .venv)")
    return f"install Debian's bcc: apt-get install python3-bpfcc bpfcc-tools ({SETUP_HINT})"


def check_bpf_syscall(create_map: Callable[[], None] | None = None,
                      paths: HostPaths | None = None) -> Check:
    """The kernel accepts bpf(): creates, then closes, a one-entry array map.
    `create_map` stands in for that syscall in tests."""
    try:
        (create_map or create_probe_map)()
    except NotImplementedError as error:
        return Check("bpf-syscall", True, f"not checked: {error}")
    except OSError as error:
        code = error.errno
        return Check("bpf-syscall", False, f"the kernel refused bpf(BPF_MAP_CREATE): "
                     f"{error.strerror} "
                     f"({errno.errorcode.get(code, code) if code is not None else code})",
                     _bpf_syscall_fix(error.errno, paths or DEFAULT_PATHS))
    return Check("bpf-syscall", True, "bpf() works: created and closed a one-entry map")


# bpf() refused to a process that holds CAP_BPF, under a seccomp filter: the
# container runtime's default profile, which on podman and CRI-O built on
# containers/common before 0.60 (Debian 12's podman 4.3) admits bpf() and
# perf_event_open() only with CAP_SYS_ADMIN. docs/kubernetes.md has the table.
SECCOMP_FIX = ("the container's seccomp profile refuses bpf() although CAP_BPF is held (the "
               "default profile of podman and CRI-O on containers/common before 0.60 allows it "
               "only with CAP_SYS_ADMIN): run with ig-metrics' profile, which allows bpf() "
               "with CAP_BPF and perf_event_open() with CAP_PERFMON: 'ig-metrics deploy "
               "--print-seccomp-profile > bpf.json', then 'podman run --security-opt "
               "seccomp=bpf.json ...', or on Kubernetes 'ig-metrics deploy --seccomp "
               "localhost' (or --sys-admin)")


def _bpf_syscall_fix(code: int | None, paths: HostPaths) -> str:
    if code == errno.ENOSYS:
        return "use a kernel built with CONFIG_BPF_SYSCALL=y"
    if code == errno.EPERM:
        try:
            status = _status_fields(paths.proc_status)
        except OSError:
            status = {}
        effective = int(status.get("CapEff", "0"), 16)
        if status.get("Seccomp") == "2" and effective >> CAP_BPF & 1:
            return SECCOMP_FIX
        return ("run as root with CAP_BPF and CAP_PERFMON (a container: --cap-add BPF "
                "--cap-add PERFMON; Kubernetes: 'ig-metrics deploy' grants them)")
    return "see dmesg for what the kernel says about bpf()"


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
    """Every hook the gadget attaches exists here, or its fallback does."""
    name = f"hooks:{spec.name}"
    if find_tracefs(paths) is None:
        return Check(name, False, f"cannot tell whether the {len(spec.hooks)} hooks of gadget "
                     f"{spec.name} exist: tracefs is not mounted",
                     f"mount it: {MOUNT_TRACEFS} ({SETUP_HINT})")
    plan = plan_hooks(spec, paths, atomics=False)
    if plan.missing:
        return Check(name, False, plan.refusal(), _hooks_fix(plan))
    kinds = [hook.kind for hook in plan.hooks]
    found = ", ".join(_count(kinds.count(kind), kind.replace("_", " "))
                      for kind in dict.fromkeys(kinds))
    detail = f"every hook of gadget {spec.name} exists here ({found})"
    fallbacks = [choice for choice in plan.choices if choice.uses_fallback]
    if fallbacks:
        detail += "; instead of " + "; ".join(
            f"{choice.hook.label}: {choice.used}" for choice in fallbacks)
    return Check(name, True, detail)


def _hooks_fix(plan: HookPlan) -> str:
    versions = [choice.hook.since for choice in plan.missing if choice.hook.since]
    newest = max(versions, key=lambda v: tuple(int(part) for part in v.split(".")), default="")
    if newest:
        return f"run this gadget on Linux {newest} or later (docs/kernels.md: each gadget's " \
               "minimum kernel)"
    return "run this gadget on a kernel that has these hooks (docs/kernels.md)"


def check_gadget_loads(spec: GadgetSpec, paths: HostPaths) -> Check:
    """Whether the gadget will load here: a built-in gadget on a kernel no older
    than the oldest the kernel matrix loads it on is known to; anything else
    is compiled and loaded (not attached) to find out."""
    name = f"loads:{spec.name}"
    version = kernel_version(paths.release)
    if is_builtin(spec) and version[:2] >= PROVEN_SINCE:
        return Check(name, True, f"built-in: loads on Linux {PROVEN_SINCE[0]}."
                     f"{PROVEN_SINCE[1]} and later, as the kernel matrix shows "
                     "(docs/kernels.md); doctor --compile loads it here")
    return _compile_check(spec, name)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


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
    if kprobes_available(paths):
        return Check("kprobes", True, "available (a gadget uses them only where a tracepoint "
                     "is missing, e.g. tcp before Linux 6.3)", required=False)
    return Check("kprobes", False, f"this kernel has no kprobes (no {tracefs}/kprobe_events): "
                 "fine where every tracepoint the gadgets need exists (the hooks checks say)",
                 required=False)


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
    return [check_privileges(paths), check_bcc(), check_bpf_syscall(paths=paths),
            check_tracefs(paths), check_kernel_headers(paths)]


def info_checks(paths: HostPaths | None = None) -> list[Check]:
    paths = paths or DEFAULT_PATHS
    return [check_btf(paths), check_debugfs(paths), check_kprobes(paths),
            check_bpf_stats(paths), check_unprivileged_bpf(paths)]


def run_checks(specs: Iterable[GadgetSpec], paths: HostPaths | None = None) -> list[Check]:
    """Every check: the required ones first (per gadget: its hooks, then whether
    it will load), then the informational ones."""
    paths = paths or DEFAULT_PATHS
    specs = list(specs)
    checks = base_checks(paths)
    blocked = any(check.blocking for check in checks)
    for spec in specs:
        hooks = check_gadget_hooks(spec, paths)
        checks.append(hooks)
        if blocked or hooks.blocking:
            checks.append(Check(f"loads:{spec.name}", False, "not tried: a required check "
                                "failed", "fix the failed checks first"))
        else:
            checks.append(check_gadget_loads(spec, paths))
    return [*checks, *info_checks(paths)]


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
    return [_compile_check(spec, f"compile:{spec.name}") for spec in specs]


def _compile_check(spec: GadgetSpec, name: str) -> Check:
    started = time.monotonic()
    program = GadgetProgram(spec)
    try:
        program.load()
    except GadgetLoadError as error:
        return Check(name, False, str(error), _load_fix(spec))
    finally:
        program.close()
    return Check(name, True, f"compiled, and the verifier of {program.plan.release} accepted "
                             f"its {len(program.plan.hooks)} programs in "
                             f"{time.monotonic() - started:.1f} s (not attached)")


def _load_fix(spec: GadgetSpec) -> str:
    if is_builtin(spec):
        return (f"the built-in gadgets are proven on Linux {PROVEN_SINCE[0]}.{PROVEN_SINCE[1]} "
                "and later (docs/kernels.md): run it on such a kernel, or report the lines "
                "above with 'uname -r'")
    return f"fix the program in {spec.program}, or the environment check it points at"
