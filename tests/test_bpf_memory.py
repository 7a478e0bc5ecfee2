"""Giving back the memory the compiler leaves behind: only read-only mappings of
LLVM's and clang's libraries that hold nothing but file pages are dropped, and
after a real compile they hold no resident page while compiling still works.
And with malloc's thresholds fixed, the big buffers of a burst are given back
when freed."""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys

import pytest

from ig_metrics.bpf.loader import GadgetProgram
from ig_metrics.bpf.memory import compiler_mappings, release_compiler_memory
from ig_metrics.gadgets import resolve

MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ")
SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 fe:00 123 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 400 kB
Anonymous:             0 kB
7f0000100000-7f0000900000 r-xp 00100000 fe:00 123 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:               41000 kB
Anonymous:             0 kB
7f0000900000-7f0000a00000 r--p 00900000 fe:00 123 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                7500 kB
Anonymous:          7500 kB
7f0000a00000-7f0000a10000 rw-p 00a00000 fe:00 123 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                  64 kB
Anonymous:             0 kB
7f0001000000-7f0001800000 r-xp 00000000 fe:00 456 /usr/lib/llvm-14/lib/libclang-cpp.so.14
Rss:               12000 kB
Anonymous:             0 kB
7f0002000000-7f0002100000 r-xp 00000000 fe:00 789 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1500 kB
Anonymous:             0 kB
7f0003000000-7f0003100000 rw-p 00000000 00:00 0
Rss:                1024 kB
Anonymous:          1024 kB
"""


def test_only_read_only_compiler_mappings_without_anonymous_pages_are_chosen():
    assert compiler_mappings(SMAPS) == [
        (0x7f0000000000, 0x7f0000100000),      # libLLVM's read-only data
        (0x7f0000100000, 0x7f0000900000),      # its code
        (0x7f0001000000, 0x7f0001800000),      # libclang-cpp's code
    ]   # not: relocated data (anonymous pages), writable data, libc, anonymous memory


def resident_compiler_kib() -> int:
    """kB resident in the mappings compiler_mappings() picks, now."""
    text = Path("/proc/self/smaps").read_text()
    chosen = set(compiler_mappings(text))
    total, current = 0, False
    for line in text.splitlines():
        header = MAPPING.match(line)
        if header is not None:
            current = (int(header.group(1), 16), int(header.group(2), 16)) in chosen
        elif current and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.bpf
def test_after_a_compile_the_compiler_code_is_not_resident_and_compiling_still_works():
    first = GadgetProgram(resolve("exec"))
    first.load()
    try:
        assert resident_compiler_kib() > 0
        assert release_compiler_memory() > 0
        assert resident_compiler_kib() == 0
        second = GadgetProgram(resolve("exec"))
        second.load()          # the compiler's code comes back from the file
        second.attach()
        second.close()
    finally:
        first.close()


# A burst, in a process of its own (malloc's settings are the process'): one
# 8 MiB block freed (by default, the mmap threshold rises to its size), then
# 24 MiB of 1 MiB blocks, one small block after each (as a tick's long-lived
# objects land after its buffers), and the big ones freed. Prints the KiB of
# resident memory that stays.
BURST = """
import sys
from ig_metrics.bpf.memory import fix_malloc_thresholds, resident_kib
if sys.argv[1] == "fixed":
    assert fix_malloc_thresholds()
before = resident_kib()
block = bytearray(8 << 20)
del block
blocks, pins = [], []
for _ in range(24):
    blocks.append(bytearray(1 << 20))
    pins.append(bytearray(1024))
del blocks
print(resident_kib() - before)
"""


def kib_left_by_burst(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", BURST, mode], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_with_fixed_malloc_thresholds_a_burst_s_big_blocks_are_given_back_when_freed():
    assert kib_left_by_burst("default") > 20 * 1024     # what the dynamic threshold keeps
    assert kib_left_by_burst("fixed") < 2 * 1024
