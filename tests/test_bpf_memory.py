"""Giving back the memory the compiler leaves behind: only read-only mappings of
LLVM's and clang's libraries that hold nothing but file pages are dropped, and
after a real compile they hold no resident page while compiling still works."""

from __future__ import annotations

from pathlib import Path
import re

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
