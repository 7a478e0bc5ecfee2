"""The sampler's bulk arithmetic over per-CPU buffers (numpy, pipeline/
sources.py) against the per-entry pure-Python code it replaced, which is
still there for layouts numpy cannot take: the same Python ints, exactly,
including per-CPU sums of u64 values that go past 2**64 (where u64
arithmetic would wrap), for counters and histogram slots, with 1 to 64 CPUs."""

from __future__ import annotations

import ctypes as ct
import random
import struct

import pytest

from ig_metrics.pipeline import sources
from ig_metrics.pipeline.sources import HistogramSource, ValueLayout, exact_sums

U64 = (1 << 64) - 1


class Counts(ct.Structure):
    # A gap and a field the layout does not ask for, as real value structs have.
    _fields_ = [("sent", ct.c_uint64), ("flags", ct.c_uint64), ("received", ct.c_uint64),
                ("opened", ct.c_uint64)]


def values(rng: random.Random) -> int:
    """Anything from 0 to the top of u64, often right under it."""
    return rng.choice((0, 1, rng.randrange(1 << 32), rng.randrange(1 << 64), U64,
                       U64 - rng.randrange(1000), (1 << 63) + rng.randrange(1 << 62)))


def buffer(rng: random.Random, entries: int, words: int) -> bytes:
    return b"".join(struct.pack("<Q", values(rng)) for _ in range(entries * words))


@pytest.mark.parametrize("cpus", [1, 2, 3, 64])
def test_counter_sums_are_the_per_entry_sums_exactly(monkeypatch, cpus) -> None:
    monkeypatch.setattr(sources, "POSSIBLE_CPUS", cpus)
    rng = random.Random(cpus)
    layout = ValueLayout(Counts, ("opened", "sent", "absent", "received"), "test")
    stride = ct.sizeof(Counts) + 8          # per-CPU copies padded apart
    size = stride * cpus
    entries = 300
    data = buffer(rng, entries, size // 8)
    every = list(range(entries))
    some = sorted(rng.sample(every, 40))
    for indexes in (every, some, []):
        bulk = layout.summed_many(data, indexes, size, stride)
        assert bulk == [layout.summed(data, index * size, stride) for index in indexes]
        assert all(type(value) is int for row in bulk for value in row)
    if cpus > 1:        # some sums really went past 2**64
        assert any(value > U64 for row in layout.summed_many(data, every, size, stride)
                   for value in row)


def test_not_per_cpu_entries_are_read_as_they_are(monkeypatch) -> None:
    monkeypatch.setattr(sources, "POSSIBLE_CPUS", 4)
    rng = random.Random(1)
    layout = ValueLayout(Counts, ("sent", "opened"), "test")
    size = ct.sizeof(Counts)
    data = buffer(rng, 50, size // 8)
    assert layout.summed_many(data, list(range(50)), size, 0) == \
        [layout.values(data, index * size) for index in range(50)]


@pytest.mark.parametrize("cpus", [1, 2, 5])
def test_histogram_sums_are_the_per_entry_sums_exactly(monkeypatch, cpus) -> None:
    monkeypatch.setattr(sources, "POSSIBLE_CPUS", cpus)
    rng = random.Random(10 + cpus)
    source = HistogramSource.__new__(HistogramSource)     # its arithmetic, without a map
    source.slot_count = 27
    source.unpack = struct.Struct("<28Q").unpack_from
    stride = 28 * 8
    size = stride * cpus
    data = buffer(rng, 120, size // 8)
    indexes = sorted(rng.sample(range(120), 70))
    bulk = source._sum_many(data, indexes, size, stride)
    assert bulk == [source._sum(data, index * size, stride) for index in indexes]


def test_exact_sums_carry_the_low_halves_into_the_high() -> None:
    import numpy as np

    words = np.array([[[U64], [U64]], [[0xFFFF_FFFF], [1]], [[1 << 63], [1 << 63]]],
                     dtype=np.uint64)
    assert exact_sums(words) == [[2 * U64], [1 << 32], [1 << 64]]
