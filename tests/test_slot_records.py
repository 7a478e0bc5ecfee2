"""The tcp gadget's socket slots as the sampler reads them, all at once: the
real program's tables (loaded, not attached, so nothing but this test writes
them) filled with slots in each state a reader can meet — free, being filled
in, reused while copied (id != id_end), live — and buried sockets in the
graveyard. Each record's key carries the slot's owner as its pid and the
owner's cgroup, and its counts are the slot's."""

from __future__ import annotations

import ctypes as ct

import pytest

from ig_metrics.gadgets import resolve
from ig_metrics.pipeline.sampler import Sampler
from ig_metrics.pipeline.sources import SlotRecord

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def tcp(bpf_available):
    from ig_metrics.bpf.loader import GadgetProgram

    program = GadgetProgram(resolve("tcp"))
    program.load()
    try:
        yield program
    finally:
        program.close()


def slot(table, *, sk: int, id: int, id_end: int, pid: int = 0, owner: int = 0,
         cgroup: int = 0, owner_cgroup: int = 0, sent: int = 0, received: int = 0):
    state = table.Leaf()
    state.sk, state.id, state.id_end = sk, id, id_end
    state.key.pid, state.key.cgroup_id, state.key.server_port, state.key.family = pid, cgroup, 443, 4
    state.key.peer[0:4] = [10, 0, 0, id & 255]
    state.owner, state.owner_cgroup = owner, owner_cgroup
    state.sent, state.received = sent, received
    return state


def expected_key(state, pid: int, cgroup: int) -> bytes:
    key = type(state.key).from_buffer_copy(bytes(state.key))
    key.pid, key.cgroup_id = pid, cgroup
    return bytes(key)


def test_only_live_consistently_copied_slots_are_read_with_their_owner_in_the_key(tcp):
    spec = resolve("tcp")
    sampler = Sampler(spec, tcp, resource=())
    source = sampler.slots[0]
    sockets, graveyard = tcp.table("sockets"), tcp.table("graveyard")
    live = slot(sockets, sk=0xFFFF_8000_0000_1000, id=7, id_end=7, pid=1, owner=4242,
                cgroup=2, owner_cgroup=9001, sent=100, received=(1 << 64) - 1)
    states = {3: live,
              5: slot(sockets, sk=1, id=8, id_end=8, owner=1, sent=5),         # being filled in
              9: slot(sockets, sk=0xFFFF_8000_0000_2000, id=10, id_end=9, sent=6),  # reused
              11: slot(sockets, sk=0, id=11, id_end=11, sent=7)}              # free
    for index, state in states.items():
        sockets[ct.c_int(index)] = state
    buried = slot(graveyard, sk=0xFFFF_8000_0000_3000, id=12, id_end=12, owner=77,
                  owner_cgroup=88, sent=3)
    graveyard[ct.c_uint64(12)] = buried
    try:
        fields = sampler.fields
        records = source.read()
        assert list(records) == [7]
        record = records[7]
        assert isinstance(record, SlotRecord)
        assert record.key == expected_key(live, 4242, 9001)
        values = dict(zip(fields, record.values))
        assert values["sent"] == 100 and values["received"] == (1 << 64) - 1
        assert source.entries == 2                    # occupied when looked at: 3 and 9
        retired = source.take_retired()
        assert [(r.id, r.key, dict(zip(fields, r.values))["sent"]) for r in retired] == \
            [(12, expected_key(buried, 77, 88), 3)]
        assert source.take_retired() == []            # taken: gone from the graveyard
    finally:
        for index in states:
            sockets[ct.c_int(index)] = sockets.Leaf()
