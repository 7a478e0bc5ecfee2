"""Which hooks a gadget attaches on a kernel, decided from what the kernel
offers: fake hosts (tests/test_doctor.py's) laid out like Linux 6.1, which
lacks sock:sock_send_length and sock:sock_recv_length, with and without
kprobes. The guests of tests/test_kernels.py attach the fallbacks for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.bpf.environment import check_gadget_hooks, check_gadget_loads, preflight
from ig_metrics.bpf.hookplan import plan_hooks
from ig_metrics.bpf.kernel import HostPaths, kernel_version, version_code
from ig_metrics.gadgets import resolve
from tests.test_doctor import fake_host, write

BEFORE_6_3 = ("sock/sock_send_length", "sock/sock_recv_length")


def linux_6_1(root: Path, *, kprobes: bool = True) -> HostPaths:
    """A fake host without the 6.3 tracepoints; tcp_sendmsg and tcp_recvmsg in kallsyms."""
    host = fake_host(root, kprobes=kprobes)
    for event in BEFORE_6_3:
        (host.root / "sys/kernel/tracing/events" / event).rmdir()
    write(host.kallsyms, "ffffffff81a00000 T tcp_sendmsg\nffffffff81a01000 T tcp_recvmsg\n")
    return HostPaths(root=host.root, release="6.1.0-27-amd64")


def test_every_hook_as_named_where_the_kernel_has_it(tmp_path: Path) -> None:
    tcp = resolve("tcp")
    plan = plan_hooks(tcp, fake_host(tmp_path), atomics=True)
    assert plan.hooks == tcp.hooks
    assert not plan.missing and plan.refusal() == ""
    flags = plan.cflags()
    assert "-DIG_HOOK_ON_SEND" in flags and "-DIG_ATOMICS" in flags
    assert "-DIG_HOOK_ON_TCP_SENDMSG" not in flags


def test_before_6_3_tcp_bytes_come_from_kprobes(tmp_path: Path) -> None:
    plan = plan_hooks(resolve("tcp"), linux_6_1(tmp_path), atomics=False)
    programs = [hook.program for hook in plan.hooks]
    assert "on_send" not in programs and "on_recv" not in programs
    assert programs[2:6] == ["on_tcp_sendmsg", "on_tcp_sendmsg_return",
                             "on_tcp_recvmsg", "on_tcp_recvmsg_return"]
    flags = plan.cflags()
    assert "-DIG_HOOK_ON_TCP_RECVMSG_RETURN" in flags and "-DIG_ATOMICS" not in flags
    assert f"-DIG_KERNEL_VERSION={6 << 16 | 1 << 8}" in flags
    sent = plan.metric_hooks(("tcp.sent",))["tcp.sent"]
    assert [choice.used for choice in sent] == ["kprobe tcp_sendmsg + kretprobe tcp_sendmsg"]
    assert sent[0].uses_fallback


def test_without_kprobes_the_refusal_names_the_hook_and_the_kernel_that_has_it(
        tmp_path: Path) -> None:
    host = linux_6_1(tmp_path, kprobes=False)
    tcp = resolve("tcp")
    plan = plan_hooks(tcp, host, atomics=False)
    assert [choice.hook.program for choice in plan.missing] == ["on_send", "on_recv"]
    assert plan.refusal().startswith(
        "gadget tcp: this kernel (6.1.0-27-amd64) lacks tracepoint sock:sock_send_length "
        "(Linux 6.3+), and its fallback kprobe tcp_sendmsg + kretprobe tcp_sendmsg (this "
        "kernel has no kprobes)")
    check = check_gadget_hooks(tcp, host)
    assert not check.ok and "Linux 6.3 or later" in check.fix
    (line,) = [line for line in preflight(tcp, host) if "gadget tcp" in line]
    assert "sock:sock_recv_length" in line and "\n" not in line


def test_the_hooks_check_says_which_fallback_is_used(tmp_path: Path) -> None:
    check = check_gadget_hooks(resolve("tcp"), linux_6_1(tmp_path))
    assert check.ok, check
    assert ("instead of tracepoint sock:sock_send_length (Linux 6.3+): kprobe tcp_sendmsg + "
            "kretprobe tcp_sendmsg") in check.detail


def test_a_builtin_gadget_is_known_to_load_from_5_10_on(tmp_path: Path) -> None:
    host = linux_6_1(tmp_path)
    check = check_gadget_loads(resolve("tcp"), host)
    assert check.ok and "Linux 5.10 and later" in check.detail


@pytest.mark.parametrize("release,version", [
    ("6.1.0-27-amd64", (6, 1, 0)), ("5.10.0-33-cloud-amd64", (5, 10, 0)),
    ("6.18.44-fc-v1300", (6, 18, 44)), ("5.15.0-1045-aws", (5, 15, 0)),
    ("4.18.0-553.el8_10.x86_64", (4, 18, 0)), ("weird", (0, 0, 0)),
])
def test_kernel_version_from_the_release(release: str, version: tuple[int, int, int]) -> None:
    assert kernel_version(release) == version


def test_version_code_is_the_kernels_macro() -> None:
    assert version_code((5, 19, 0)) == 0x051300
    assert version_code((6, 1, 300)) == 0x0601FF     # the patch level saturates


def test_doctor_shows_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ig_metrics.bpf import environment
    from ig_metrics.cli import app

    monkeypatch.setattr(environment, "DEFAULT_PATHS", linux_6_1(tmp_path))
    result = CliRunner().invoke(app, ["doctor", "-g", "tcp", "--output", "json"])
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["hooks:tcp"]["status"] == "ok"
    assert "kretprobe tcp_recvmsg" in checks["hooks:tcp"]["detail"]
    assert checks["kprobes"]["ok"] is True
