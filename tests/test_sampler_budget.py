"""The sampler's memory budget (a profile's sampler.max_series) on a real kernel
map filled from user space: the first keys keep their own series, later ones
are summed into one otel.metric.overflow series that never goes down."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.bpf

GADGET = Path(__file__).parent / "gadgets" / "userfilled"


def put(table, entries: dict[int, int]) -> None:
    """pid -> bytes sent, one series per pid."""
    for pid, sent in entries.items():
        key = table.Key(pid=pid, port=80, family=4)
        key.peer[0:4] = [10, 0, 0, 1]
        table[key] = table.Leaf(sent=sent, received=0)


def sent_by_series(snapshot) -> dict:
    return {dict(point.attributes).get("process.pid", "overflow"): point.value
            for point in snapshot.metric("bench.sent").points}


def test_keys_beyond_the_budget_are_summed_into_an_overflow_series(bpf_available):
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    program = GadgetProgram(resolve(str(GADGET)))
    program.load()
    try:
        table = program.table("flows")
        sampler = Sampler(program.spec, program, resource=(), idle_expiry=0, max_series=4)
        put(table, {1: 10, 2: 20, 3: 30})
        assert sent_by_series(sampler.tick()) == {1: 10, 2: 20, 3: 30}
        put(table, {4: 40, 5: 50})           # the budget (4, overflow included) is full
        first = sent_by_series(sampler.tick())
        assert first == {1: 10, 2: 20, 3: 30, "overflow": 90}
        put(table, {4: 41, 6: 1, 1: 11})     # folded keys stay folded and keep counting
        second = sent_by_series(sampler.tick())
        assert second == {1: 11, 2: 20, 3: 30, "overflow": 92}
        assert sampler.folded_keys == 3
        assert dict(next(p for p in sampler.tick().metric("bench.sent").points
                         if "otel.metric.overflow" in dict(p.attributes)).attributes) \
            == {"otel.metric.overflow": True}
    finally:
        program.close()


