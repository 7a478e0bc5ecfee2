"""Giving back the memory the compiler leaves behind: only read-only mappings of
LLVM's and clang's libraries that hold nothing but file pages are dropped, and
after a real compile they hold no resident page while compiling still works.
And with malloc's thresholds fixed, the big buffers of a burst are given back
when freed; its smaller ones by a trim, once, after its series are gone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ig_metrics.bpf.loader import GadgetProgram
from ig_metrics.bpf.memory import BurstTrim, compiler_mappings, release_compiler_memory
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
# 24 MiB of blocks of `size` bytes, one small block after each (as a tick's
# long-lived objects land after its buffers), and the others freed. Prints
# the KiB of resident memory that stays (after a trim, with "trim").
BURST = """
import sys
from ig_metrics.bpf.memory import fix_malloc_thresholds, resident_kib, trim_heaps
mode, size = sys.argv[1], int(sys.argv[2])
if mode != "default":
    assert fix_malloc_thresholds()
before = resident_kib()
block = bytearray(8 << 20)
del block
blocks, pins = [], []
for _ in range((24 << 20) // size):
    blocks.append(bytearray(size))
    pins.append(bytearray(1024))
del blocks
if mode == "trim":
    trim_heaps()
print(resident_kib() - before)
"""


def kib_left_by_burst(mode: str, size: int) -> int:
    done = subprocess.run([sys.executable, "-c", BURST, mode, str(size)], capture_output=True,
                          text=True, check=True)
    return int(done.stdout)


def test_with_fixed_malloc_thresholds_a_burst_s_big_blocks_are_given_back_when_freed():
    assert kib_left_by_burst("default", 1 << 20) > 20 * 1024    # the dynamic threshold's
    assert kib_left_by_burst("fixed", 1 << 20) < 2 * 1024


def test_smaller_blocks_freed_between_live_ones_stay_until_a_trim():
    assert kib_left_by_burst("fixed", 64 << 10) > 20 * 1024
    assert kib_left_by_burst("trim", 64 << 10) < 4 * 1024


class Trims:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return 4096


def test_a_trim_comes_once_a_delay_after_the_series_fell_below_half_of_their_peak():
    trims = Trims()
    burst = BurstTrim(4.0, trim=trims)
    for now, series in enumerate([100, 5000, 9000, 6000, 4600]):
        assert burst.after_tick(series, float(now)) is None      # not below half yet
    assert burst.after_tick(300, 5.0) is None                    # armed
    assert burst.after_tick(200, 8.0) is None                    # exporters may still hold them
    assert burst.after_tick(200, 9.0) == 4096
    assert trims.count == 1
    for now in range(10, 30):
        assert burst.after_tick(200, float(now)) is None         # once
    assert trims.count == 1


def test_no_trim_for_small_drops_or_a_steady_count():
    trims = Trims()
    burst = BurstTrim(0.0, trim=trims)
    for now, series in enumerate([800, 100, 800, 100, 800, 100] + [50_000] * 10):
        burst.after_tick(series, float(now))
    assert trims.count == 0          # 700 fewer: below `at_least`
