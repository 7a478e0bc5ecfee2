"""Series whose attributes change while they count (a peer address that
becomes a pod's IP, a pod whose metadata arrives late): on a real kernel map
filled from user space, through the real Kubernetes client against the HTTP
server of tests/k8s_apiserver.py, which STANDS IN FOR THE API SERVER (there is
no cluster here). What a key counted before the change stays with its old
attributes, so that no exported cumulative point goes down, and every count is
exported exactly once."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ig_metrics.config.model import AttributeName, AttributeSelection
from tests.k8s_apiserver import FakeApiServer, make_pod, write_kubeconfig

pytestmark = pytest.mark.bpf

GADGET = Path(__file__).parent / "gadgets" / "userfilled"
PEER_POD = "  - {name: peer.pod, field: peer, decoder: peer_pod, family_field: family}\n"


def gadget_with_peer_pods(tmp_path: Path) -> Path:
    """The userfilled test gadget, its peer addresses also resolved to pods."""
    folder = tmp_path / "userfilled"
    shutil.copytree(GADGET, folder)
    spec = folder / "gadget.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("sources:\n", PEER_POD + "sources:\n", 1))
    return folder


def put(table, pid: int, peer: str, sent: int) -> None:
    key = table.Key(pid=pid, port=80, family=4)
    key.peer[0:4] = [int(part) for part in peer.split(".")]
    table[key] = table.Leaf(sent=sent, received=0)


def sent(snapshot) -> dict[frozenset, int]:
    return {frozenset(point.attributes): point.value
            for point in snapshot.metric("bench.sent").points}


class FakeClock:
    """The sampler's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def __call__(self) -> int:
        self.now += 1000
        return self.now


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the pod cache did not catch up"
        time.sleep(0.02)


def test_a_key_that_gains_a_peer_pod_leaves_its_counts_with_its_old_point(
        tmp_path, bpf_available) -> None:
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.k8s.attribution import start_attribution
    from ig_metrics.pipeline.sampler import Sampler

    # Two keys that differ only in what the selection drops: one point.
    selection = AttributeSelection(exclude=(AttributeName("process.pid"),
                                            AttributeName("network.peer.address")))
    program = GadgetProgram(resolve(str(gadget_with_peer_pods(tmp_path))))
    program.load()
    with FakeApiServer() as api:
        attribution = start_attribution(
            kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", api),
            environ={"NODE_NAME": "node-a"})
        try:
            assert attribution.pods is not None
            wait_until(lambda: api.watch_requests())
            table = program.table("flows")
            clock = FakeClock()
            sampler = Sampler(program.spec, program, resource=(), idle_expiry=0,
                              attribution=attribution, selection=selection, clock=clock,
                              linger=30)
            put(table, 1, "10.1.0.1", 100)
            put(table, 2, "10.1.0.2", 50)
            port = frozenset({("server.port", 80)})
            assert sent(sampler.tick()) == {port: 150}

            # 10.1.0.1 becomes a pod's IP. The change is seen at a tick: what
            # key 1 counted up to that tick stays in the point key 2 adds to,
            # and it counts anew under the peer pod from there on.
            api.add(make_pod("db-0", namespace="data", node="node-b", ip="10.1.0.1"))
            wait_until(lambda: attribution.pods.peer("10.1.0.1") is not None)
            put(table, 1, "10.1.0.1", 130)
            assert sent(sampler.tick()) == {port: 180}
            put(table, 2, "10.1.0.2", 70)
            put(table, 1, "10.1.0.1", 131)
            peer = port | {("k8s.peer.pod.name", "db-0"), ("k8s.peer.namespace.name", "data")}
            snapshot = sampler.tick()
            assert sent(snapshot) == {port: 200, peer: 1}
            started = {frozenset(p.attributes): p.start_time_ns
                       for p in snapshot.metric("bench.sent").points}
            assert started[peer] > started[port]     # a new series, from the change

            # The pod goes: the peer series ends with its final value, still
            # exported for `linger` (30 s here) so that the slowest exporter
            # gets it, and key 1 counts on in the point it had left.
            uid = attribution.pods.peer("10.1.0.1").uid
            api.delete(make_pod("db-0", namespace="data", node="node-b", ip="10.1.0.1", uid=uid))
            wait_until(lambda: attribution.pods.peer("10.1.0.1") is None)
            put(table, 1, "10.1.0.1", 140)
            assert sent(sampler.tick()) == {port: 200, peer: 10}
            put(table, 1, "10.1.0.1", 145)
            clock.now += 29 * 10**9
            assert sent(sampler.tick()) == {port: 205, peer: 10}
            clock.now += 10**9
            last = sent(sampler.tick())
            assert last == {port: 205}
            # Every byte exported exactly once: the ended series' 10 and the rest.
            assert last[port] + 10 == 70 + 145
        finally:
            attribution.close()
            program.close()
