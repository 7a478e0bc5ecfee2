"""`ig-metrics doctor` and the environment checks behind it: on this machine for
real, and against a fake host (a temporary directory laid out like /proc, /sys
and /lib/modules) for every way a check can fail."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.bpf import environment
from ig_metrics.bpf.environment import (
    CAP_BPF,
    CAP_PERFMON,
    CAP_SYS_ADMIN,
    HostPaths,
    check_bcc,
    check_bpf_stats,
    check_bpf_syscall,
    check_debugfs,
    check_gadget_hooks,
    check_kernel_headers,
    check_kprobes,
    check_privileges,
    check_tracefs,
    preflight,
    run_checks,
)
from ig_metrics.cli import app
from ig_metrics.gadgets import builtin_names, builtin_specs, resolve

RELEASE = "6.18.0-test"
ALL_CAPS = (1 << 41) - 1
CONSOLE_SCRIPT = Path(sys.executable).parent / "ig-metrics"
PATH_CHECKS = ("privileges", "tracefs", "kernel-headers")


def expected_names() -> set[str]:
    return {"privileges", "bcc", "bpf-syscall", "tracefs", "kernel-headers", "btf", "debugfs",
            "kprobes", "bpf-stats", "unprivileged-bpf", "cgroup-v2", "cgroup-writes", "cgroup-mkdir",
            "kubernetes-api",
            *(f"hooks:{name}" for name in builtin_names()),
            *(f"loads:{name}" for name in builtin_names())}


# --- a fake host ---------------------------------------------------------------------

def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_host(root: Path, *, uid: int = 0, caps: int = ALL_CAPS, tracefs: str = "tracing",
              debugfs: bool = True, kprobes: bool = False) -> HostPaths:
    """A host where every required check passes (like this machine: another
    version's headers linked, no kprobes); keyword arguments break one thing."""
    write(root / "proc/self/status", f"Name:\tpython\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
                                     f"CapEff:\t{caps:016x}\n")
    mounts = "sysfs /sys sysfs rw 0 0\n"
    if debugfs:
        mounts += "debugfs /sys/kernel/debug debugfs rw 0 0\n"
    write(root / "proc/self/mounts", mounts)
    write(root / "proc/sys/kernel/bpf_stats_enabled", "0\n")
    write(root / "proc/sys/kernel/unprivileged_bpf_disabled", "2\n")
    write(root / "proc/kallsyms", "ffffffff81000000 T _stext\n")
    write(root / "sys/kernel/btf/vmlinux", "BTF")
    if tracefs:
        events = root / "sys/kernel" / tracefs / "events"
        for spec in builtin_specs():
            for hook in spec.hooks:
                category = hook.tracefs_path if hook.kind == "tracepoint" else f"x/{hook.target}"
                (events / category).mkdir(parents=True, exist_ok=True)
        if kprobes:
            write(root / "sys/kernel" / tracefs / "kprobe_events", "")
    arch_tree = root / "usr/src/linux-headers-6.1.0-9-amd64"
    common_tree = root / "usr/src/linux-headers-6.1.0-9-common"
    (arch_tree / "include/generated").mkdir(parents=True)
    (common_tree / "include/linux").mkdir(parents=True)
    modules = root / "lib/modules" / RELEASE
    modules.mkdir(parents=True)
    (modules / "build").symlink_to(arch_tree)
    (modules / "source").symlink_to(common_tree)
    return HostPaths(root=root, release=RELEASE)


@pytest.fixture
def host(tmp_path: Path) -> HostPaths:
    return fake_host(tmp_path)


def assert_fails_with_fix(check, *words: str) -> None:
    assert not check.ok and check.required and check.blocking, check
    assert check.status == "fail"
    assert check.fix, f"{check.name}: a failing check must say how to fix it"
    for word in words:
        assert word in check.detail + " " + check.fix, (word, check)


# --- the fake host: each failure mode -------------------------------------------------

def test_healthy_fake_host_passes_the_checks_that_read_files(host: HostPaths) -> None:
    checks = {check.name: check for check in run_checks(builtin_specs(), host)}
    for name in (*PATH_CHECKS, *(f"hooks:{n}" for n in builtin_names())):
        assert checks[name].ok and checks[name].status == "ok", checks[name]
    assert "another kernel's headers" in checks["kernel-headers"].detail


def test_not_root_without_capabilities(tmp_path: Path) -> None:
    check = check_privileges(fake_host(tmp_path, uid=1000, caps=0))
    assert_fails_with_fix(check, "uid 1000", "CAP_BPF", "CAP_PERFMON", "sudo")


def test_root_without_capabilities_is_a_container_without_privileges(tmp_path: Path) -> None:
    check = check_privileges(fake_host(tmp_path, caps=1 << CAP_BPF))
    assert_fails_with_fix(check, "root", "container")


def test_bpf_and_perfmon_capabilities_replace_root(tmp_path: Path) -> None:
    check = check_privileges(fake_host(tmp_path, uid=1000,
                                       caps=1 << CAP_BPF | 1 << CAP_PERFMON))
    assert check.ok and "CAP_BPF, CAP_PERFMON" in check.detail
    assert check_privileges(fake_host(tmp_path / "admin", uid=1000, caps=1 << CAP_SYS_ADMIN)).ok


def test_unreadable_proc_status(tmp_path: Path) -> None:
    assert_fails_with_fix(check_privileges(HostPaths(root=tmp_path, release=RELEASE)),
                          "proc/self/status")


def test_bcc_not_installed(tmp_path: Path) -> None:
    check = check_bcc("ig_metrics_no_such_bcc", dist_packages=tmp_path)
    assert_fails_with_fix(check, "ig_metrics_no_such_bcc", "apt-get install python3-bpfcc")


def test_bcc_installed_but_not_seen_by_this_python(tmp_path: Path) -> None:
    (tmp_path / "ig_metrics_no_such_bcc").mkdir()
    check = check_bcc("ig_metrics_no_such_bcc", dist_packages=tmp_path)
    assert_fails_with_fix(check, "--system-site-packages")


@pytest.mark.parametrize(("code", "fix"), [(errno.EPERM, "CAP_BPF"),
                                           (errno.ENOSYS, "CONFIG_BPF_SYSCALL")])
def test_bpf_syscall_refused(code: int, fix: str) -> None:
    def refused() -> None:   # stands in for bpf(BPF_MAP_CREATE) failing with `code`
        raise OSError(code, "refused")

    check = check_bpf_syscall(refused)
    assert_fails_with_fix(check, errno.errorcode[code], fix)


CAP_BPF_ONLY = 1 << CAP_BPF | 1 << CAP_PERFMON     # as the DaemonSet grants


@pytest.mark.parametrize(("seccomp", "caps", "fix", "absent"), [
    # podman 4.3's default profile: bpf() only with CAP_SYS_ADMIN.
    ("2", CAP_BPF_ONLY, "--print-seccomp-profile", "--privileged"),
    ("2", 0, "--cap-add BPF", "seccomp"),           # no CAP_BPF: the capability is missing
    ("0", CAP_BPF_ONLY, "CAP_BPF", "seccomp"),        # no filter: not seccomp's doing
], ids=["seccomp-filter-with-cap-bpf", "no-cap-bpf", "no-seccomp"])
def test_bpf_refused_under_seccomp_points_at_the_profile(tmp_path: Path, seccomp, caps, fix,
                                                         absent) -> None:
    write(tmp_path / "proc/self/status", f"Name:\tpython\nUid:\t0\t0\t0\t0\n"
                                         f"CapEff:\t{caps:016x}\nSeccomp:\t{seccomp}\n")

    def refused() -> None:   # stands in for bpf() under the runtime's seccomp filter
        raise OSError(errno.EPERM, "Operation not permitted")

    check = check_bpf_syscall(refused, HostPaths(root=tmp_path))
    assert_fails_with_fix(check, "EPERM", fix)
    assert absent not in check.fix


def test_tracefs_not_mounted(tmp_path: Path) -> None:
    paths = fake_host(tmp_path, tracefs="")
    assert_fails_with_fix(check_tracefs(paths), "not mounted", "mount -t tracefs")
    tcp = resolve("tcp")
    assert_fails_with_fix(check_gadget_hooks(tcp, paths), "tracefs is not mounted")
    assert check_kprobes(paths).detail.startswith("unknown")


def test_tracefs_under_debugfs_is_enough(tmp_path: Path) -> None:
    paths = fake_host(tmp_path, tracefs="debug/tracing")
    assert check_tracefs(paths).ok
    assert check_gadget_hooks(resolve("tcp"), paths).ok


def test_missing_tracepoint_is_named(host: HostPaths) -> None:
    tcp = resolve("tcp")
    hook = next(hook for hook in tcp.hooks if hook.kind == "tracepoint")
    (host.root / "sys/kernel/tracing/events" / hook.tracefs_path).rmdir()
    check = check_gadget_hooks(tcp, host)
    assert_fails_with_fix(check, hook.target, "gadget tcp")
    assert check.name == "hooks:tcp"
    assert f"this kernel ({RELEASE}) lacks tracepoint {hook.target} (Linux 4.16+)" in check.detail
    assert "Linux 4.16 or later" in check.fix


def test_raw_tracepoint_found_through_kallsyms_or_missing(host: HostPaths) -> None:
    tcp = resolve("tcp")
    raw = next(hook for hook in tcp.hooks if hook.kind == "raw_tracepoint")
    (host.root / "sys/kernel/tracing/events/x" / raw.target).rmdir()
    assert_fails_with_fix(check_gadget_hooks(tcp, host), f"raw tracepoint {raw.target}")
    write(host.kallsyms, f"ffffffff81ebfbc0 t __bpf_trace_{raw.target}\n")
    assert check_gadget_hooks(tcp, host).ok


def test_no_kernel_headers(host: HostPaths) -> None:
    (host.modules / "build").unlink()
    assert_fails_with_fix(check_kernel_headers(host), "does not exist",
                          f"linux-headers-{RELEASE}", "-common")


def test_broken_headers_link(host: HostPaths) -> None:
    (host.modules / "build").unlink()
    (host.modules / "build").symlink_to(host.root / "usr/src/gone")
    assert_fails_with_fix(check_kernel_headers(host), "broken link")


def test_headers_without_common_tree(host: HostPaths) -> None:
    (host.modules / "source").unlink()
    assert_fails_with_fix(check_kernel_headers(host), "include/linux")


def test_kheaders_stand_in_for_headers(host: HostPaths) -> None:
    (host.modules / "build").unlink()
    write(host.kheaders, "xz")
    check = check_kernel_headers(host)
    assert check.ok and "kheaders" in check.detail


def test_informational_checks_never_block(tmp_path: Path) -> None:
    paths = fake_host(tmp_path, debugfs=False)
    for check in (check_kprobes(paths), check_debugfs(paths), check_bpf_stats(paths)):
        assert not check.ok and not check.required and not check.blocking
        assert check.status == "info"
    assert "sysctl kernel.bpf_stats_enabled=1" in check_bpf_stats(paths).fix
    assert "mount -t debugfs" in check_debugfs(paths).fix
    assert check_kprobes(fake_host(tmp_path / "kp", kprobes=True)).ok


def test_preflight_gives_one_line_per_problem_with_its_fix(host: HostPaths) -> None:
    tcp = resolve("tcp")
    write(host.proc_status, "Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n")
    hook = next(hook for hook in tcp.hooks if hook.kind == "tracepoint")
    (host.root / "sys/kernel/tracing/events" / hook.tracefs_path).rmdir()
    problems = preflight(tcp, host)
    assert any("uid 1000" in line and "sudo" in line for line in problems), problems
    assert any(f"gadget tcp: this kernel ({RELEASE}) lacks tracepoint {hook.target}" in line
               for line in problems)
    assert all("\n" not in line for line in problems)
    assert preflight(None, host) == [line for line in problems if "gadget tcp" not in line]


def test_preflight_without_tracefs_says_it_once(tmp_path: Path) -> None:
    problems = preflight(resolve("tcp"), fake_host(tmp_path, tracefs=""))
    tracefs_lines = [line for line in problems if "tracefs" in line]
    assert len(tracefs_lines) == 1, problems
    assert tracefs_lines[0].startswith("tracefs is not mounted")
    assert "mount -t tracefs nodev /sys/kernel/tracing" in tracefs_lines[0]


def test_doctor_exits_1_and_shows_the_fix_when_a_required_check_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "DEFAULT_PATHS", fake_host(tmp_path, tracefs=""))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "✗" in result.stdout and "mount -t tracefs nodev /sys/kernel/tracing" in result.stdout
    assert "required checks failed" in result.stdout

    result = CliRunner().invoke(app, ["doctor", "--output", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert report["ok"] is False
    assert checks["tracefs"]["status"] == "fail" and checks["tracefs"]["fix"]
    assert checks["kprobes"]["status"] == "info"


def test_doctor_compile_is_not_tried_when_a_required_check_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "DEFAULT_PATHS", fake_host(tmp_path, tracefs=""))
    result = CliRunner().invoke(app, ["doctor", "--compile", "--output", "json"])
    assert result.exit_code == 1
    compile_check = next(check for check in json.loads(result.stdout)["checks"]
                         if check["name"] == "compile:tcp")
    assert compile_check["status"] == "fail" and "not tried" in compile_check["detail"]


def test_doctor_unknown_gadget_is_invalid_input() -> None:
    result = CliRunner().invoke(app, ["doctor", "--gadget", "tpc"])
    assert result.exit_code == 2
    assert "unknown gadget 'tpc'" in result.output


# --- this machine, for real -----------------------------------------------------------

@pytest.mark.bpf
def test_doctor_passes_here() -> None:
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "Every required check passed" in result.stdout
    assert "✗" not in result.stdout


@pytest.mark.bpf
def test_doctor_json_names_every_check_here() -> None:
    result = CliRunner().invoke(app, ["doctor", "--output", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert {check["name"] for check in report["checks"]} == expected_names()
    assert all(check["status"] in ("ok", "info") for check in report["checks"])


@pytest.mark.bpf
def test_installed_console_script_runs_doctor() -> None:
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT} is missing: run scripts/setup.sh"
    result = subprocess.run([str(CONSOLE_SCRIPT), "doctor", "--output", "json"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {check["name"] for check in json.loads(result.stdout)["checks"]} == expected_names()


@pytest.mark.bpf
def test_doctor_compile_loads_every_gadget_without_attaching() -> None:
    result = CliRunner().invoke(app, ["doctor", "--compile", "--output", "json"])
    assert result.exit_code == 0, result.output
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    for name in builtin_names():
        assert checks[f"compile:{name}"]["status"] == "ok", checks[f"compile:{name}"]
        assert "not attached" in checks[f"compile:{name}"]["detail"]


@pytest.mark.bpf
def test_preflight_is_clear_here() -> None:
    specs = builtin_specs()
    for spec in specs:
        assert preflight(spec) == []
