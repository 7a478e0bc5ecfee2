"""Decoder for a syscall number: its name in this machine's syscall table,
read from the kernel headers (the running kernel's own when its headers
package is installed, else the C library's copy), never a table of ours."""

from __future__ import annotations

import functools
import os
import platform
import re
from pathlib import Path

from ig_metrics.model.snapshot import AttrValue

# The uapi header naming every syscall of an architecture, and the directory
# of that architecture in a kernel tree.
_HEADERS = {"x86_64": ("x86", "unistd_64.h"), "aarch64": ("arm64", "unistd.h"),
            "riscv64": ("riscv", "unistd.h"), "ppc64le": ("powerpc", "unistd_64.h"),
            "s390x": ("s390", "unistd_64.h")}
_DEFINE = re.compile(r"^#define\s+__NR(?:3264)?_(\w+)\s+(\d+|__NR3264_\w+)\s*$", re.MULTILINE)


def header_candidates(machine: str | None = None, release: str | None = None,
                      root: Path = Path("/")) -> list[Path]:
    """Where this machine's syscall table may be, best first."""
    machine = machine or platform.machine()
    release = release or os.uname().release
    arch, header = _HEADERS.get(machine, (machine, "unistd.h"))
    build = root / "lib" / "modules" / release / "build"
    return [build / "arch" / arch / "include" / "generated" / "uapi" / "asm" / header,
            root / "usr" / "include" / f"{machine}-linux-gnu" / "asm" / header,
            root / "usr" / "include" / "asm" / header,
            root / "usr" / "include" / "asm-generic" / "unistd.h"]


def parse_table(text: str) -> dict[int, str]:
    """number -> name from `#define __NR_name 12` lines (and the asm-generic
    `#define __NR_name __NR3264_name` indirection)."""
    direct: dict[str, int] = {}
    generic: dict[str, int] = {}
    aliases: dict[str, str] = {}
    for match in _DEFINE.finditer(text):
        name, value = match.groups()
        is_3264 = match.group(0).split()[1].startswith("__NR3264_")
        if value.isdigit():
            (generic if is_3264 else direct)[name] = int(value)
        else:
            aliases[name] = value.removeprefix("__NR3264_")
    for name, target in aliases.items():
        if target in generic:
            direct.setdefault(name, generic[target])
    table: dict[int, str] = {}
    for name, number in direct.items():
        if name.startswith("syscalls") or name.startswith("arch_specific"):
            continue            # counts and ranges, not syscalls
        table.setdefault(number, name)
    return table


@functools.cache
def syscall_table() -> tuple[dict[int, str], Path | None]:
    """This machine's table and the header it came from (None: none found)."""
    for path in header_candidates():
        try:
            table = parse_table(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue            # not installed here: try the next place
        if table:
            return table, path
    return {}, None


def decode_syscall(value, fields, spec, ctx) -> AttrValue:
    """The syscall's name (openat); a number the headers do not name (a
    syscall newer than them) as its digits."""
    number = int(value)
    return syscall_table()[0].get(number, str(number))
