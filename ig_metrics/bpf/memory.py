"""Giving back memory. What compiling a gadget leaves behind: bcc compiles with
LLVM and clang inside this process: loading their libraries and compiling
leave ~80 MB of their code resident, and malloc keeps the heap the compiler
freed. Neither is used again once the programs are loaded (a later compile
faults the code back in from the page cache, unchanged). And what a burst of
series leaves behind in malloc's heaps (`fix_malloc_thresholds`, `BurstTrim`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re
from collections.abc import Callable

log = logging.getLogger("ig_metrics.bpf")

MADV_DONTNEED = 4
M_TRIM_THRESHOLD = -1           # mallopt parameters (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
MALLOC_THRESHOLD = 128 * 1024   # glibc's defaults, kept fixed
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


def _libc():
    libc_name = ctypes.util.find_library("c")
    return None if libc_name is None else ctypes.CDLL(libc_name, use_errno=True)


def fix_malloc_thresholds() -> bool:
    """Keep glibc's mmap and trim thresholds at their defaults (128 KiB) instead
    of letting them follow the allocations. By default, freeing a block malloc
    had mapped on its own raises the mmap threshold to that block's size (up to
    32 MiB) and the trim threshold to twice that: after one tick of a burst freed
    its multi-MB buffers (batch reads, encoded requests, scrape bodies), buffers
    of that size come from the heaps, and a thread's heap keeps a free top of up
    to twice that size resident for good, the main heap its free chunks between
    live ones. A burst of 3,000 processes left ~30 MB so (docs/performance.md,
    "Memory after churn"). Fixed, each block over 128 KiB is mapped and unmapped
    on its own and a heap gives back its top past 128 KiB; the cost is a map and
    page faults per such block, a few per tick. Returns whether malloc took it
    (False where the C library is not glibc's)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # Setting either one is what turns the adjustment off; both, to be plain.
    return (libc.mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD) == 1
            and libc.mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD) == 1)


def trim_heaps() -> int:
    """malloc_trim(0): every whole free page in malloc's heaps given back, not only
    those at a heap's top; returns the KiB of resident memory this gave back."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return 0
    before = resident_kib()
    libc.malloc_trim(0)
    return max(0, before - resident_kib())


class BurstTrim:
    """Trims malloc's heaps once after the series of a burst are gone. By itself
    glibc gives memory back only from a heap's top, and the main heap's top is
    held since start-up (compiling left live blocks there): what a burst's
    series used below it (their blocks of 0.5 to 128 KiB: tables of dicts and
    sets, lists, the reads' bytes) stays resident, free, when they expire, 11 to
    13 MB after 3,000 processes, which malloc_trim gives back
    (docs/performance.md, "Memory after churn"). Armed when the series fell to
    less than half of their peak, by at least `at_least`; trims `delay` seconds
    later, once the exporters have let go of the last snapshots that held them."""

    def __init__(self, delay: float, *, at_least: int = 1000,
                 trim: Callable[[], int] = trim_heaps) -> None:
        self.delay = delay
        self.at_least = at_least
        self._trim = trim
        self._peak = 0
        self._due: float | None = None

    def after_tick(self, series: int, now: float) -> int | None:
        """The KiB given back if this tick trimmed, else None."""
        self._peak = max(self._peak, series)
        if self._due is None:
            if self._peak - series >= max(series, self.at_least):
                self._due = now + self.delay
            return None
        if now < self._due:
            return None
        self._due = None
        self._peak = series
        given_back = self._trim()
        log.debug("malloc_trim after a burst's series expired: %d MiB given back",
                  given_back // 1024)
        return given_back


def release_compiler_memory() -> int:
    """Unmap the compiler's resident code pages and hand freed heap back to the
    system; returns the KiB of resident memory this gave back."""
    libc = _libc()
    if libc is None:
        return 0
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
