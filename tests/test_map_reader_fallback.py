"""Map reads on kernels without batch operations (per-CPU arrays on Linux
5.10) or one-key lookup-and-delete (hashes before 5.14): the reader then reads
key by key. This kernel has both, so each test reads the same real maps both
ways and compares; the QEMU guests (tests/test_kernels.py) run the fallback
where the kernel forces it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.bpf

ENTRIES = 64
PROGRAM = f"""
BPF_PERCPU_ARRAY(counts, u64, {ENTRIES});
BPF_HASH(pairs, u32, u64, {ENTRIES});
"""


@pytest.fixture
def program():
    from bcc import BPF

    program = BPF(text=PROGRAM)
    yield program
    program.cleanup()


def fill(program, count: int) -> None:
    counts, pairs = program["counts"], program["pairs"]
    for index in range(count):
        values = counts.Leaf()
        for cpu in range(len(values)):
            values[cpu] = (index + 1) * (cpu + 1)
        counts[counts.Key(index)] = values
        pairs[pairs.Key(index)] = pairs.Leaf(index * 1000 + 7)


def entries(batch) -> dict[bytes, bytes]:
    return {batch.key(index): batch.value(index) for index in range(batch.count)}


@pytest.mark.parametrize("name", ["counts", "pairs"])
def test_key_by_key_reads_what_a_batch_reads(program, name: str) -> None:
    from ig_metrics.bpf.maps import MapReader

    fill(program, 40)
    batched, each = MapReader(program[name], name), MapReader(program[name], name)
    each.batches = False
    first = batched.read()
    assert batched.batches is not None       # True, or False on a kernel without them
    second = each.read()
    assert second.count == first.count == (ENTRIES if name == "counts" else 40)
    assert entries(second) == entries(first)


def test_key_by_key_takes_every_entry_once(program) -> None:
    from ig_metrics.bpf.maps import MapReader

    fill(program, 40)
    expected = entries(MapReader(program["pairs"], "pairs").read())
    reader = MapReader(program["pairs"], "pairs")
    reader.batches = reader.takes = False
    taken = reader.read(delete=True)
    assert entries(taken) == expected
    assert len(program["pairs"]) == 0
    assert reader.read(delete=True).count == 0


def test_take_without_the_kernels_lookup_and_delete(program) -> None:
    from ig_metrics.bpf.maps import MapReader

    fill(program, 3)
    reader = MapReader(program["pairs"], "pairs")
    reader.takes = False
    key = (2).to_bytes(4, "little")
    assert int.from_bytes(reader.take(key), "little") == 2007
    assert reader.take(key) is None
    assert len(program["pairs"]) == 2
