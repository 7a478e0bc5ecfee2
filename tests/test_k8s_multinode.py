"""Two nodes simulated on one host, each an `ig-metrics run` agent as the
DaemonSet runs one per node, pushing OTLP/gRPC to ONE receiver: the exports
must keep the nodes apart. A simulated node is a network namespace (its own
loopback and a veth to a bridge in the root namespace, where the receiver and
the stand-in API server listen) plus a cgroup holding that node's kubelet
hierarchy, with one pod's container. The agents share one kernel, so each
counts only its node's cgroup (`--cgroup`), as a real node's kernel would
count only its own processes. tests/k8s_apiserver.py STANDS IN FOR THE
CLUSTER'S API SERVER (there is no cluster here); the cgroups stand in for
containers (tests/kubelet_cgroups.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ig_metrics.bpf.cgroupfs import find_cgroup2_mount
from tests.k8s_apiserver import FakeApiServer, write_kubeconfig
from tests.kubelet_cgroups import KubeletContainer, make_kubelet_container
from tests.receivers import OtlpGrpcReceiver
from tests.test_k8s_attribution import (
    latest,
    resources,
    served_pod,
    start_agent,
    wait_for_pod_watches,
)

pytestmark = pytest.mark.bpf

SUFFIX = os.getpid() % 100000
SUBNET = f"10.233.{os.getpid() % 250}"      # a /24 on the bridge

# One connection over the node's own loopback, server and client in one
# process of the node's container: `argv[1]` bytes each way counted once.
NODE_WORKLOAD = r"""
import socket, sys, threading
size = int(sys.argv[1])
server = socket.create_server(("127.0.0.1", 0))
received = []
def serve():
    conn, _ = server.accept()
    with conn:
        total = 0
        while chunk := conn.recv(65536):
            total += len(chunk)
    received.append(total)
thread = threading.Thread(target=serve)
thread.start()
with socket.create_connection(server.getsockname()) as client:
    client.sendall(b"x" * size)
    client.shutdown(socket.SHUT_WR)
    client.recv(1)                 # until the server closes
thread.join()
print(received[0], flush=True)
"""


@dataclass
class SimulatedNode:
    name: str
    netns: str
    address: str                 # its end of the veth, on the bridge's subnet
    cgroup: Path                 # the node's cgroup: its kubepods.slice is in it
    container: KubeletContainer

    @property
    def prefix(self) -> list[str]:
        """Runs a command in the node's network namespace, with the host's
        mounts. Not `ip netns exec`: it mounts a sysfs of its own over /sys,
        where the cgroup mounts then are missing; a DaemonSet's pod has the
        node's cgroup hierarchy mounted (docs/kubernetes.md)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextmanager
def simulated_nodes(letters: str = "ab", tag: str = "", subnet: str = SUBNET):
    """(the bridge's address, a SimulatedNode per letter); everything removed
    afterwards. `tag` and `subnet` keep two sets of nodes of one test process apart."""
    bridge = f"igmbr{tag}{SUFFIX}"
    bridge_address = f"{subnet}.1"
    nodes: list[SimulatedNode] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{bridge_address}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for index, letter in enumerate(letters):
            netns, host_end, node_end = (f"igm-node-{tag}{letter}-{SUFFIX}",
                                         f"igmh{tag}{letter}{SUFFIX}",
                                         f"igmn{tag}{letter}{SUFFIX}")
            cgroup = find_cgroup2_mount() / f"igm-node-{tag}{letter}-{SUFFIX}"
            cgroup.mkdir()
            node = SimulatedNode(f"node-{letter}", netns, f"{subnet}.{index + 2}", cgroup,
                                 make_kubelet_container(cgroup))
            nodes.append(node)
            _ip("netns", "add", netns)
            _ip("link", "add", host_end, "type", "veth", "peer", "name", node_end,
                "netns", netns)
            _ip("link", "set", host_end, "master", bridge, "up")
            _ip("-n", netns, "addr", "add", f"{node.address}/24", "dev", node_end)
            _ip("-n", netns, "link", "set", node_end, "up")
            _ip("-n", netns, "link", "set", "lo", "up")
        yield bridge_address, nodes
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"cannot build the simulated nodes' network: "
                           f"{' '.join(error.cmd)}: {error.stderr.strip()}") from error
    finally:
        for node in nodes:
            node.container.remove()
            node.cgroup.rmdir()
            # Deleting a namespace deletes its veth, and the other end with it.
            subprocess.run(["ip", "netns", "del", node.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@pytest.fixture
def cluster(bpf_available):
    """(the bridge's address, [node-a, node-b]); everything removed afterwards."""
    with simulated_nodes() as built:
        yield built


def test_two_node_agents_pushing_to_one_receiver_keep_their_nodes_apart(tmp_path, cluster):
    bridge_address, nodes = cluster
    sizes = {"node-a": 111_111, "node-b": 222_222}
    with OtlpGrpcReceiver(host=bridge_address) as receiver, \
            FakeApiServer(host=bridge_address) as api:
        for node in nodes:
            api.add(served_pod(node.container, deployment=f"app-{node.name}", node=node.name))
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api)
        agents = [start_agent(tmp_path / node.name, "tcp", receiver.endpoint,
                              "--cgroup", str(node.cgroup), prefix=tuple(node.prefix),
                              env={"NODE_NAME": node.name, "KUBECONFIG": str(kubeconfig)})
                  for node in nodes]
        try:
            for node, agent in zip(nodes, agents):
                agent.wait_attached(receiver, node=node.name)
                wait_for_pod_watches(api, node.name)
            workloads = [subprocess.Popen(
                [*node.prefix, *node.container.prefix, sys.executable, "-c", NODE_WORKLOAD,
                 str(sizes[node.name])], stdout=subprocess.PIPE, text=True)
                for node in nodes]
            for workload, node in zip(workloads, nodes):
                out, _ = workload.communicate(timeout=60)
                assert workload.returncode == 0 and int(out) == sizes[node.name]
        finally:
            for agent in agents:
                agent.stop()

    senders = {resource.get("k8s.node.name"): set() for resource, _ in
               resources(receiver.received)}
    for resource, peer in resources(receiver.received):
        senders[resource.get("k8s.node.name")].add(peer.rsplit(":", 1)[0])
    # Each node's exports came from its own namespace's address, and from no other.
    assert senders == {node.name: {f"ipv4:{node.address}"} for node in nodes}
    for node in nodes:
        for metric in ("tcp.sent", "tcp.received"):
            series = latest(receiver.received, metric, node=node.name)
            assert sum(value for _, value in series) == sizes[node.name], (metric, series)
            for attributes, _ in series:
                assert attributes["container.id"] == node.container.container_id
                assert attributes["k8s.pod.uid"] == node.container.pod_uid
                assert attributes["k8s.deployment.name"] == f"app-{node.name}"
        opened = latest(receiver.received, "tcp.connections.opened", node=node.name)
        assert sorted((attributes["tcp.connection.direction"], value)
                      for attributes, value in opened) == [("inbound", 1), ("outbound", 1)]
