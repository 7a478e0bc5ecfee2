"""The sampler's read cache: which entries of a map changed since the last
read, found on the raw buffers, and the decoded values of the others kept
(the same objects, which is how the sampler tells unchanged series)."""

from __future__ import annotations

import random

from ig_metrics.bpf.maps import Batch
from ig_metrics.pipeline.sources import ReadCache, changed_entries

SIZE = 16


def entries(values: list[int]) -> bytes:
    return b"".join(value.to_bytes(SIZE, "little") for value in values)


def test_changed_entries_are_exactly_those_whose_bytes_differ() -> None:
    rng = random.Random(7)
    before = [rng.randrange(1 << 64) for _ in range(500)]
    after = list(before)
    changed = sorted({0, 1, 2, 99, 100, 250, 498, 499} | set(rng.sample(range(500), 40)))
    for index in changed:
        after[index] ^= 1 << rng.randrange(SIZE * 8)   # one bit anywhere in the entry
    assert changed_entries(entries(before), entries(after), SIZE) == changed
    assert changed_entries(entries(before), entries(before), SIZE) == []


def batch(keys: list[int], values: list[int]) -> Batch:
    return Batch(b"".join(key.to_bytes(4, "little") for key in keys), entries(values),
                 len(keys), 4, SIZE, 0)


class Decoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes, offset: int) -> list[int]:
        self.calls += 1
        return [int.from_bytes(data[offset:offset + SIZE], "little")]


def test_unchanged_entries_keep_their_decoded_objects() -> None:
    cache, decode = ReadCache(), Decoder()
    first = cache.decode_all(batch([1, 2, 3], [10, 20, 30]), decode)
    assert first == {k.to_bytes(4, "little"): [v] for k, v in ((1, 10), (2, 20), (3, 30))}
    assert decode.calls == 3
    second = cache.decode_all(batch([1, 2, 3], [10, 21, 30]), decode)
    assert decode.calls == 4                                    # only key 2 again
    key = {k: k.to_bytes(4, "little") for k in (1, 2, 3, 4)}
    assert second[key[1]] is first[key[1]] and second[key[3]] is first[key[3]]
    assert second[key[2]] == [21]

    # A key came and the others moved: compared where they were before.
    third = cache.decode_all(batch([4, 3, 1, 2], [40, 30, 11, 21]), decode)
    assert decode.calls == 6                                    # keys 4 and 1
    assert third[key[3]] is first[key[3]] and third[key[2]] is second[key[2]]
    assert {k: v[0] for k, v in third.items()} == {key[4]: 40, key[3]: 30, key[1]: 11,
                                                   key[2]: 21}
    # A key went: the rest is as read.
    fourth = cache.decode_all(batch([4, 2], [40, 21]), decode)
    assert decode.calls == 6 and set(fourth) == {key[4], key[2]}
