"""The default selection on a real kernel: tcp's series leave out process.pid
(an opt-in attribute), so short-lived processes of one command make one series
whose counts are their exact sum; opted in, each process has its own, exact."""

from __future__ import annotations

import pytest

from ig_metrics.config.model import DEFAULT_ATTRIBUTES, AttributeSelection
from tests.snapshots import PIDS, points, total
from tests.tcp_workload import EchoCountServer, run_client

pytestmark = pytest.mark.bpf

SIZES = (1_001, 2_002, 3_003, 4_004)      # bytes each client sends
REPLY = 77                                # bytes the server sends each


def run_clients(selection: AttributeSelection, name: str):
    """Four short-lived clients named `name`, one connection each, under the
    tcp gadget sampled with `selection`; the snapshot once all have exited."""
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    spec = resolve("tcp")
    program = GadgetProgram(spec)
    program.load()
    program.attach()
    server = EchoCountServer(reply_bytes=REPLY)
    try:
        sampler = Sampler(spec, program, resource=(), idle_expiry=0, selection=selection)
        clients = [run_client("127.0.0.1", server.port, send_bytes=size, name=name)
                   for size in SIZES]
        server.wait_for(len(SIZES))
        return sampler.tick(), clients
    finally:
        server.close()
        program.close()


def test_by_default_a_commands_processes_make_one_exact_series():
    snapshot, clients = run_clients(DEFAULT_ATTRIBUTES, "igm-card-sum")
    assert len({client.pid for client in clients}) == len(SIZES)
    mine = dict(process__command="igm-card-sum", tcp__connection__direction="outbound")
    for metric, want in (("tcp.sent", sum(SIZES)), ("tcp.received", REPLY * len(SIZES)),
                         ("tcp.connections.opened", len(SIZES)),
                         ("tcp.connect.duration", len(SIZES))):
        (point,) = points(snapshot, metric, **mine)
        assert total(snapshot, metric, **mine) == want, metric
        assert "process.pid" not in dict(point.attributes), metric
    assert not any("process.pid" in dict(point.attributes)
                   for data in snapshot.metrics for point in data.points)


def test_opted_in_each_process_keeps_its_own_exact_series():
    snapshot, clients = run_clients(PIDS, "igm-card-pid")
    mine = dict(process__command="igm-card-pid", tcp__connection__direction="outbound")
    sent = {dict(point.attributes)["process.pid"]: point.value
            for point in points(snapshot, "tcp.sent", **mine)}
    assert sent == {client.pid: size for client, size in zip(clients, SIZES)}
    for client in clients:
        assert total(snapshot, "tcp.connect.duration", process__pid=client.pid, **mine) == 1
