"""Giving back the memory that compiling a gadget leaves behind. bcc compiles
with LLVM and clang inside this process: loading their libraries and compiling
leave ~80 MB of their code resident, and malloc keeps the heap the compiler
freed. Neither is used again once the programs are loaded (a later compile
faults the code back in from the page cache, unchanged)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re

log = logging.getLogger("ig_metrics.bpf")

MADV_DONTNEED = 4
# The compiler's libraries, as bcc links them (libLLVM-14.so.1, libclang-cpp.so.14).
COMPILER_LIBRARY = re.compile(r"/lib(LLVM|clang)[^/]*\.so[^/]*$")
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


def compiler_mappings(smaps: str) -> list[tuple[int, int]]:
    """(start, end) of each mapping of a compiler library that holds nothing but
    pages of the file: not writable and no anonymous page (a relocated or
    otherwise written page is anonymous, and dropping it would lose the write).
    `smaps` is the text of /proc/self/smaps."""
    found: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for line in smaps.splitlines():
        mapping = _MAPPING.match(line)
        if mapping is not None:
            start, end, permissions, path = mapping.groups()
            current = None
            if "w" not in permissions and COMPILER_LIBRARY.search(path):
                current = (int(start, 16), int(end, 16))
        elif current is not None and line.startswith("Anonymous:"):
            if int(line.split()[1]) == 0:
                found.append(current)
            current = None
    return found


def resident_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def release_compiler_memory() -> int:
    """Unmap the compiler's resident code pages and hand freed heap back to the
    system; returns the KiB of resident memory this gave back."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return 0
    libc = ctypes.CDLL(libc_name, use_errno=True)
    try:
        before = resident_kib()
        with open("/proc/self/smaps", encoding="utf-8", errors="replace") as smaps:
            mappings = compiler_mappings(smaps.read())
    except OSError as error:
        # Without /proc there is nothing to find; this only saves memory.
        log.debug("compiler memory not released: %s", error)
        return 0
    if hasattr(libc, "malloc_trim"):      # glibc's
        libc.malloc_trim(0)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for start, end in mappings:
        # A read-only private file mapping without anonymous pages: its pages
        # come back from the file, identical, if touched again.
        libc.madvise(start, end - start, MADV_DONTNEED)
    released = max(0, before - resident_kib())
    log.debug("released %d MiB the compiler left resident", released // 1024)
    return released
