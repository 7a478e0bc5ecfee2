"""Key decoders, one behaviour each, on raw values as the kernel writes them."""

from __future__ import annotations

import ipaddress

from ig_metrics.gadgets.decoders import DECODERS
from ig_metrics.gadgets.spec import AttributeSpec


class Context:
    """Stands in for a running gadget's name lookups."""

    def command_of(self, pid: int) -> str:
        return {42: "nginx"}.get(pid, "")


def decode(name: str, value, fields=None, **spec):
    attribute = AttributeSpec("a", "f", name, **spec)
    return DECODERS[name](value, fields or {}, attribute, Context())


def test_inet_ip_by_family():
    v4 = ipaddress.IPv4Address("10.1.2.3").packed + bytes(12)
    v6 = ipaddress.IPv6Address("2001:db8::7").packed
    mapped = ipaddress.IPv6Address("::ffff:192.0.2.9").packed
    assert decode("inet_ip", v4, {"fam": 4}, family_field="fam") == "10.1.2.3"
    assert decode("inet_ip", v6, {"fam": 6}, family_field="fam") == "2001:db8::7"
    assert decode("inet_ip", mapped, {"fam": 6}, family_field="fam") == "192.0.2.9"
    assert decode("inet_ip", bytes(16), {"fam": 0}, family_field="fam") == ""


def test_enum_names_known_values_and_keeps_unknown_ones():
    assert decode("enum", 1, values=((1, "outbound"),)) == "outbound"
    assert decode("enum", 9, values=((1, "outbound"),)) == "9"


def test_comm_and_int():
    assert decode("comm", 42) == "nginx"
    assert decode("comm", 0) == ""
    assert decode("int", 8080) == 8080


def test_errno_names_the_error_and_leaves_success_empty():
    assert decode("errno", 2) == "ENOENT"
    assert decode("errno", 0) == ""
    assert decode("errno", 512) == "ERESTARTSYS"      # kernel-internal, seen by tracepoints
    assert decode("errno", 4000) == "4000"


def test_string_ends_at_the_first_nul():
    assert decode("string", b"bash") == "bash"
    assert decode("string", b"igm\0junk") == "igm"
    assert decode("string", (__import__("ctypes").c_ubyte * 4)(0x6c, 0x73, 0, 0x78)) == "ls"
    assert decode("string", b"\xff\xfe") == "\ufffd\ufffd"


def test_syscall_names_come_from_the_machines_headers():
    from ig_metrics.gadgets.decoders.syscall import parse_table, syscall_table

    x86 = "#define __NR_read 0\n#define __NR_getppid 110\n#define __NR_openat 257\n"
    assert parse_table(x86) == {0: "read", 110: "getppid", 257: "openat"}
    generic = ("#define __NR_io_setup 0\n#define __NR3264_fcntl 25\n"
               "#define __NR_fcntl __NR3264_fcntl\n#define __NR_syscalls 451\n")
    assert parse_table(generic) == {0: "io_setup", 25: "fcntl"}
    table, header = syscall_table()
    assert header is not None, "no syscall table header on this machine"
    assert {"read", "openat", "execve", "getppid"} <= set(table.values())
    assert decode("syscall", 99999) == "99999"      # newer than the headers: its number
