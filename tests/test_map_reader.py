"""Batch reads of a real BPF map: what a read writes into the reader's buffers
takes memory, and once the map holds far fewer entries, the pages past them
are given back (a burst of series would otherwise leave them resident)."""

from __future__ import annotations

import ctypes as ct
import mmap

import pytest

pytestmark = pytest.mark.bpf

ENTRIES = 4096
PROGRAM = f"""
struct wide {{ u64 words[64]; }};
BPF_HASH(wide, u32, struct wide, {ENTRIES});
"""


def resident_bytes(buffer) -> int:
    """Bytes of `buffer` (a ctypes array) in resident pages, by mincore(2)."""
    libc = ct.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ct.c_void_p, ct.c_size_t, ct.c_char_p]
    start = ct.addressof(buffer)
    assert start % mmap.PAGESIZE == 0
    pages = -(-ct.sizeof(buffer) // mmap.PAGESIZE)
    vector = ct.create_string_buffer(pages)
    assert libc.mincore(start, pages * mmap.PAGESIZE, vector) == 0, ct.get_errno()
    return sum(byte & 1 for byte in vector.raw) * mmap.PAGESIZE


@pytest.fixture(scope="module")
def table():
    from bcc import BPF

    program = BPF(text=PROGRAM)
    yield program["wide"]
    program.cleanup()


def fill(table, count: int) -> None:
    table.clear()
    keys = (table.Key * count)(*range(count))
    values = (table.Leaf * count)()
    for index in range(count):
        values[index].words[0] = index + 1
    table.items_update_batch(keys, values)


def test_a_map_that_shrank_gives_back_the_pages_a_full_read_wrote(table):
    from ig_metrics.bpf.maps import MapReader

    reader = MapReader(table, "wide")
    values = reader._values.array
    assert resident_bytes(values) == 0             # mapped, never written
    fill(table, ENTRIES)
    full = reader.read()
    assert full.count == ENTRIES
    assert resident_bytes(values) == ENTRIES * 512     # every page written by the kernel
    fill(table, 10)
    few = reader.read()
    assert sorted(int.from_bytes(few.value(index)[:8], "little")
                  for index in range(few.count)) == list(range(1, 11))
    assert resident_bytes(values) <= mmap.PAGESIZE * 2     # the 10 entries' pages
    fill(table, ENTRIES)                               # and the buffer still takes a full map
    again = reader.read()
    assert sorted(int.from_bytes(again.value(index)[:8], "little")
                  for index in range(again.count)) == list(range(1, ENTRIES + 1))


def test_a_small_shrink_keeps_the_pages(table):
    from ig_metrics.bpf.maps import MapReader

    reader = MapReader(table, "wide")
    fill(table, 1000)
    reader.read()
    fill(table, 900)            # 50 KB less: not worth a syscall at every read
    reader.read()
    assert resident_bytes(reader._values.array) >= 1000 * 512
