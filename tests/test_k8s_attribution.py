"""Container and pod attribution end to end: `ig-metrics run` through the
installed console script, the real kernel's eBPF, real processes in cgroups
named as kubelet and containerd name a container's (tests/kubelet_cgroups.py:
no runtime runs here, the cgroups stand in for containers), real TCP traffic
and execs of known size, exported over OTLP/gRPC to a real grpc receiver.
Pod names come from tests/k8s_apiserver.py, a local HTTP server that STANDS IN
FOR A CLUSTER'S API SERVER (there is no cluster here), reached through a
kubeconfig as ig-metrics would reach a real one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.k8s_apiserver import FakeApiServer, make_pod, write_kubeconfig
from tests.kubelet_cgroups import KubeletContainer, make_kubelet_container
from tests.receivers import HistogramSeen, OtlpGrpcReceiver, attributes_of, iter_points, point_value
from tests.tcp_workload import EchoCountServer, run_client

pytestmark = pytest.mark.bpf

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
CONTAINER_ATTRIBUTES = ("container.", "k8s.")
# Set in the agent's environment by the tests that want them, never inherited.
CLUSTER_ENVIRONMENT = ("NODE_NAME", "KUBECONFIG", "KUBERNETES_SERVICE_HOST",
                       "KUBERNETES_SERVICE_PORT")


# --- the agent ----------------------------------------------------------------------
def write_profile(directory: Path, endpoint: str, attributes: str = "",
                  hourly_endpoint: str | None = None) -> Path:
    """A profile `k8s` that pushes to `endpoint` every second (and to
    `hourly_endpoint` every hour); `attributes` is the YAML of its
    `attributes:` mapping."""
    directory.mkdir(parents=True, exist_ok=True)
    selection = f", attributes: {attributes}" if attributes else ""
    hourly = "" if hourly_endpoint is None else f"""
  hourly: {{type: otlp-grpc, endpoint: "{hourly_endpoint}", insecure: true, interval: 1h}}"""
    (directory / "k8s.yaml").write_text(f"""
exporters:
  collector: {{type: otlp-grpc, endpoint: "{endpoint}", insecure: true}}{hourly}
profiles:
  k8s: {{exporters: [collector{", hourly" if hourly else ""}], interval: 1s{selection}}}
""")
    return directory


@dataclass
class Agent:
    """An `ig-metrics run` process, its stderr in a file."""

    process: subprocess.Popen
    log: Path

    def wait_attached(self, receiver: OtlpGrpcReceiver, node: str | None = None,
                      timeout: float = 30) -> None:
        """Until the first export (from `node`, by its resource's k8s.node.name,
        when given): the gadget's programs are attached by then."""
        deadline = time.monotonic() + timeout
        while not any(node is None or resource.get("k8s.node.name") == node
                      for resource, _ in resources(list(receiver.received))):
            assert self.process.poll() is None, f"ig-metrics exited: {self.output()}"
            assert time.monotonic() < deadline, f"no export after {timeout}s: {self.output()}"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: detach, a final export, exit 0."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.returncode == 0, self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_agent(workdir: Path, gadget: str, receiver_endpoint: str, *flags: str,
                attributes: str = "", hourly_endpoint: str | None = None,
                env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> Agent:
    """`ig-metrics run --gadget GADGET --no-tui --duration 30s` pushing to the
    receiver (the tests end it with SIGTERM once their traffic is counted;
    --duration bounds a test that fails before). The environment is the
    test's without any cluster or OpenTelemetry setting, plus `env`; `prefix`
    runs it through e.g. nsenter into a network namespace."""
    workdir.mkdir(parents=True, exist_ok=True)
    profiles = write_profile(workdir / "profiles", receiver_endpoint, attributes,
                             hourly_endpoint)
    environment = {name: value for name, value in os.environ.items()
                   if name not in CLUSTER_ENVIRONMENT and not name.startswith("OTEL_")
                   and not name.lower().endswith("_proxy")}
    environment.update(env or {})
    log = workdir / "ig-metrics.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [*prefix, IG_METRICS, "run", "--gadget", gadget, "--profile", "k8s",
             "--profiles-dir", str(profiles), "--no-tui", "--duration", "30s", *flags],
            stdout=subprocess.DEVNULL, stderr=stderr, env=environment)
    return Agent(process, log)


# --- what the receiver got ----------------------------------------------------------
Series = dict[str, Any]


def resources(received) -> list[tuple[dict[str, Any], str]]:
    """(resource attributes, the sender's address) of every export's resources."""
    return [(dict(attributes_of(resource_metrics.resource.attributes)), item.peer)
            for item in received for resource_metrics in item.request.resource_metrics]


def latest(received, metric: str, wanted: Series | None = None,
           node: str | None = None) -> list[tuple[Series, Any]]:
    """(attributes, last exported value) of every series of `metric` whose
    attributes include `wanted`, from the resource of `node` (k8s.node.name)
    when given. A series no longer exported keeps its last value."""
    last: dict[tuple[frozenset, frozenset], Any] = {}
    for resource, data, point in iter_points(received):
        if data.name != metric or (node is not None and resource.get("k8s.node.name") != node):
            continue
        last[(frozenset(resource.items()), attributes_of(point.attributes))] = \
            point_value(data, point)
    return [(dict(attributes), value) for (_, attributes), value in last.items()
            if (wanted or {}).items() <= dict(attributes).items()]


def assert_never_decreasing(received) -> int:
    """Every cumulative point (monotonic sums, histogram counts) is at least
    what the previous export of the same series said; returns how many
    points were compared."""
    previous: dict[tuple, Any] = {}
    compared = 0
    for resource, data, point in iter_points(received):
        kind = data.WhichOneof("data")
        if not (kind == "histogram" or kind == "sum" and data.sum.is_monotonic):
            continue
        key = (frozenset(resource.items()), data.name, attributes_of(point.attributes))
        value = point_value(data, point)
        if key in previous:
            before = previous[key]
            if isinstance(value, HistogramSeen):
                assert value.count >= before.count and all(
                    now >= then for now, then in zip(value.counts, before.counts)), \
                    f"{data.name} {dict(key[2])} went down: {before} then {value}"
            else:
                assert value >= before, f"{data.name} {dict(key[2])} went down: " \
                                        f"{before} then {value}"
            compared += 1
        previous[key] = value
    return compared


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not seen within {timeout}s: {what}"
        time.sleep(0.05)


def is_host_series(attributes: Series) -> bool:
    return not any(name.startswith(CONTAINER_ATTRIBUTES) for name in attributes)


# --- fixtures -----------------------------------------------------------------------
@pytest.fixture
def container(bpf_available) -> KubeletContainer:
    """A burstable pod's containerd container, as kubelet's systemd driver names it."""
    made = make_kubelet_container()
    yield made
    made.remove()


@pytest.fixture
def receiver() -> OtlpGrpcReceiver:
    with OtlpGrpcReceiver() as grpc_receiver:
        yield grpc_receiver


@pytest.fixture
def server() -> EchoCountServer:
    echo = EchoCountServer(reply_bytes=2_345)
    yield echo
    echo.close()


def served_pod(container: KubeletContainer, deployment: str = "web",
               node: str = "node-a") -> dict:
    """The pod of `container` as the API server returns it, in namespace shop:
    Deployment `deployment`'s (ReplicaSet <deployment>-7d4b9c8f6d,
    pod-template-hash 7d4b9c8f6d), its one container named app."""
    return make_pod(f"{deployment}-7d4b9c8f6d-x2x5k", namespace="shop", node=node,
                    uid=container.pod_uid,
                    containers=(("app", f"containerd://{container.container_id}"),),
                    owner=("ReplicaSet", f"{deployment}-7d4b9c8f6d"),
                    labels={"pod-template-hash": "7d4b9c8f6d"})


def cluster_agent(tmp_path: Path, api: FakeApiServer, receiver: OtlpGrpcReceiver,
                  hourly_endpoint: str | None = None) -> Agent:
    """A tcp agent on node-a with a kubeconfig for the stand-in API server,
    attached and with its pod watches open (their first lists answered)."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api)
    agent = start_agent(tmp_path, "tcp", receiver.endpoint, hourly_endpoint=hourly_endpoint,
                        env={"NODE_NAME": "node-a", "KUBECONFIG": str(kubeconfig)})
    agent.wait_attached(receiver)
    wait_for_pod_watches(api, "node-a")
    return agent


def wait_for_pod_watches(api: FakeApiServer, node: str) -> None:
    """Until the watches of `node`'s pods and of the cluster's are open: their
    first lists have been answered, so the pods served now are known."""
    wait_until(lambda: any(query.get("fieldSelector") == [f"spec.nodeName={node}"]
                           for query in api.watch_requests())
               and any("fieldSelector" not in query for query in api.watch_requests()),
               f"the pod watches of {node} and of the cluster")


# --- cgroup paths alone -------------------------------------------------------------
def test_a_containers_bytes_carry_its_container_and_pod_and_a_hosts_carry_none(
        tmp_path, container, receiver, server):
    """No NODE_NAME, no API: container.id, container.runtime.name and
    k8s.pod.uid come from the cgroup path alone, on the exact bytes of the
    process in the container; the host's processes (a client, and this test
    process serving) carry no container or pod attribute."""
    agent = start_agent(tmp_path, "tcp", receiver.endpoint)
    try:
        agent.wait_attached(receiver)
        inside = run_client("127.0.0.1", server.port, send_bytes=123_457, name="igm-in-pod",
                            prefix=container.prefix)
        host = run_client("127.0.0.1", server.port, send_bytes=76_543, name="igm-on-host")
        server.wait_for(2)
    finally:
        agent.stop()
    assert inside.received == host.received == 2_345

    [(attributes, sent)] = latest(receiver.received, "tcp.sent", {"process.command": "igm-in-pod"})
    assert sent == 123_457
    assert attributes["container.id"] == container.container_id
    assert attributes["container.runtime.name"] == "containerd"
    assert attributes["k8s.pod.uid"] == container.pod_uid
    assert attributes["process.command"] == "igm-in-pod"
    assert attributes["tcp.connection.direction"] == "outbound"
    assert "k8s.pod.name" not in attributes, "pod names need the API"
    assert latest(receiver.received, "tcp.received", attributes) == [(attributes, 2_345)]
    assert latest(receiver.received, "tcp.connections.opened", attributes) == [(attributes, 1)]

    [(host_attributes, host_sent)] = latest(receiver.received, "tcp.sent",
                                            {"process.command": "igm-on-host"})
    assert host_sent == 76_543 and is_host_series(host_attributes), host_attributes
    # This process accepted both connections: inbound, on the host, both clients' bytes.
    serving = latest(receiver.received, "tcp.received",
                     {"server.port": server.port, "tcp.connection.direction": "inbound"})
    assert sum(value for _, value in serving) == 123_457 + 76_543
    assert all(is_host_series(attributes) for attributes, _ in serving), serving


def test_execs_in_a_container_are_counted_exactly_with_its_container(tmp_path, container,
                                                                      receiver):
    """The exec gadget: every exec of /bin/true by a shell in the container is
    counted under the container, exactly; the host's exec is not."""
    executions = 17
    agent = start_agent(tmp_path, "exec", receiver.endpoint)
    try:
        agent.wait_attached(receiver)
        container.shell(f"i=0; while [ $i -lt {executions} ]; do /bin/true; i=$((i+1)); done")
        subprocess.run(["/bin/true"], check=True)          # one on the host
    finally:
        agent.stop()
    in_container = latest(receiver.received, "process.executions",
                          {"process.command": "true", "container.id": container.container_id})
    assert [value for _, value in in_container] == [executions], in_container
    [(attributes, _)] = in_container
    assert attributes["k8s.pod.uid"] == container.pod_uid
    assert attributes["container.runtime.name"] == "containerd"
    assert attributes["process.parent.command"] == "sh"
    on_host = latest(receiver.received, "process.executions", {"process.command": "true"})
    assert sum(value for attributes, value in on_host if is_host_series(attributes)) >= 1
    assert sum(value for _, value in on_host) >= executions + 1


def test_a_container_that_ends_before_the_next_reading_keeps_its_attribution(
        tmp_path, container, receiver):
    """--interval 1h: the agent reads at start and at the end only, by when
    the container has exited and kubelet has removed its cgroup. The cgroup
    was there before the agent started: the walk made as the gadget attached
    found it."""
    agent = start_agent(tmp_path, "exec", receiver.endpoint, "--interval", "1h")
    try:
        agent.wait_attached(receiver)
        container.shell("/bin/true; /bin/true; /bin/true")
        container.remove()
    finally:
        agent.stop()
    assert true_executions(receiver, container) == [(container_series(container), 3)]


def test_a_container_made_and_gone_between_two_readings_keeps_its_attribution(
        tmp_path, receiver):
    """A Job's container: its cgroup is made after the agent attached and
    removed before the agent reads again (--interval 1h: at the end only).
    Only the kernel saw its path, as the cgroup was made."""
    agent = start_agent(tmp_path, "exec", receiver.endpoint, "--interval", "1h")
    try:
        agent.wait_attached(receiver)
        job = make_kubelet_container(qos="besteffort")
        try:
            job.shell("/bin/true; /bin/true")
        finally:
            job.remove()
    finally:
        agent.stop()
    assert true_executions(receiver, job) == [(container_series(job), 2)]


def true_executions(receiver: OtlpGrpcReceiver, container: KubeletContainer) -> list:
    """The exec gadget's series of /bin/true run by a shell in `container`."""
    return latest(receiver.received, "process.executions",
                  {"process.command": "true", "container.id": container.container_id})


def container_series(container: KubeletContainer) -> Series:
    return {"process.command": "true", "process.parent.command": "sh",
            "container.id": container.container_id, "container.runtime.name": "containerd",
            "k8s.pod.uid": container.pod_uid}


# --- the Kubernetes API (the stand-in server) ---------------------------------------
def test_pod_names_from_the_api_are_on_the_containers_series(tmp_path, container, receiver,
                                                             server):
    """The pod is served by the stand-in API server before the agent starts:
    its names, its container's name and its Deployment are on the series of
    the exact bytes, and the resource names the node."""
    with FakeApiServer() as api:
        api.add(served_pod(container))
        agent = cluster_agent(tmp_path, api, receiver)
        try:
            run_client("127.0.0.1", server.port, send_bytes=65_537, name="igm-web",
                       prefix=container.prefix)
            server.wait_for(1)
        finally:
            agent.stop()
    [(attributes, sent)] = latest(receiver.received, "tcp.sent", {"process.command": "igm-web"})
    assert sent == 65_537
    assert {name: attributes.get(name) for name in (
        "container.id", "container.runtime.name", "k8s.pod.uid", "k8s.pod.name",
        "k8s.namespace.name", "k8s.container.name", "k8s.replicaset.name",
        "k8s.deployment.name")} == {
        "container.id": container.container_id, "container.runtime.name": "containerd",
        "k8s.pod.uid": container.pod_uid, "k8s.pod.name": "web-7d4b9c8f6d-x2x5k",
        "k8s.namespace.name": "shop", "k8s.container.name": "app",
        "k8s.replicaset.name": "web-7d4b9c8f6d", "k8s.deployment.name": "web"}
    assert {resource.get("k8s.node.name") for resource, _ in
            resources(receiver.received)} == {"node-a"}


STEPPED_CLIENT = r"""
import ctypes, socket, sys
name, host, port = sys.argv[1:4]
ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)   # PR_SET_NAME: our process.command
with socket.create_connection((host, int(port))) as sock:
    print("connected", flush=True)
    while line := sys.stdin.readline():                # one line: that many bytes more
        sock.sendall(b"x" * int(line))
        print("sent", flush=True)
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass
"""


class SteppedClient:
    """One connection that sends what the test says, when it says it."""

    def __init__(self, container: KubeletContainer, port: int, name: str) -> None:
        self.process = subprocess.Popen(
            [*container.prefix, sys.executable, "-c", STEPPED_CLIENT, name, "127.0.0.1",
             str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.sent = 0
        assert self.process.stdout.readline() == "connected\n"

    def send(self, count: int) -> None:
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "sent\n"
        self.sent += count

    def close(self) -> None:
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0


# The late pod's client, and its pod's name once the API server has it.
LATE, LATE_POD = {"process.command": "igm-late"}, "late-7d4b9c8f6d-x2x5k"


def send_while_pod_metadata_arrives(api: FakeApiServer, receiver: OtlpGrpcReceiver,
                                    container: KubeletContainer, server: EchoCountServer,
                                    arrival: str = "watch event") -> SteppedClient:
    """One connection of the container counts bytes before the API server
    knows its pod (as when a pod starts faster than its watch event travels),
    then keeps sending while the pod reaches the agent, until `receiver` has
    the series with the pod's names; then sends more and closes. `arrival`:
    by a "watch event", or by a "relist after 410" (the pod changed while
    the server's history was compacted and its watches cut, as when an API
    server restarts: only a new list shows it)."""
    client = SteppedClient(container, server.port, "igm-late")
    client.send(100_000)
    wait_until(lambda: [value for _, value in latest(receiver.received, "tcp.sent",
                                                     LATE)] == [100_000],
               "the first 100000 bytes exported without pod names")
    client.send(7_000)
    if arrival == "watch event":
        api.add(served_pod(container, deployment="late"))
    else:
        api.change_unseen(served_pod(container, deployment="late"))
        api.drop_watches()
    deadline = time.monotonic() + 15
    while not latest(receiver.received, "tcp.sent", {**LATE, "k8s.pod.name": LATE_POD}):
        assert time.monotonic() < deadline, "the pod's names never arrived"
        # Bytes counted right up to the tick that renames the series: that
        # tick's snapshot alone has them under the old names.
        client.send(1_000)
        time.sleep(0.05)
    client.send(50_000)
    client.close()
    server.wait_for(1)
    return client


def assert_split_exactly(received, container: KubeletContainer, sent: int) -> None:
    """The late pod's bytes: one series without its names (at least the
    first 100000 bytes), one with them, together exactly `sent`; and no
    cumulative point of any series ever went down."""
    assert assert_never_decreasing(received) > 0
    series = latest(received, "tcp.sent", LATE)
    before = [value for attributes, value in series if "k8s.pod.name" not in attributes]
    after = [(attributes, value) for attributes, value in series
             if "k8s.pod.name" in attributes]
    assert len(before) == 1 and len(after) == 1, series
    [(attributes, renamed)] = after
    assert attributes["k8s.pod.name"] == LATE_POD
    assert attributes["k8s.namespace.name"] == "shop"
    assert attributes["k8s.deployment.name"] == "late"
    assert attributes["container.id"] == container.container_id
    assert before[0] >= 100_000
    assert before[0] + renamed == sent, \
        f"before the names {before[0]} + after them {renamed} != sent {sent}"


@pytest.mark.parametrize("arrival", ["watch event", "relist after 410"])
def test_pod_metadata_arriving_mid_run_renames_the_series_without_losing_a_byte(
        tmp_path, container, receiver, server, arrival):
    """The series gains the pod's names once the agent has the pod from the
    stand-in API server; the bytes before and after add up exactly; nothing
    goes down."""
    with FakeApiServer() as api:
        agent = cluster_agent(tmp_path, api, receiver)
        try:
            client = send_while_pod_metadata_arrives(api, receiver, container, server,
                                                     arrival)
        finally:
            agent.stop()
        node_lists = [query for query in api.list_requests()
                      if query.get("fieldSelector") == ["spec.nodeName=node-a"]]
        assert len(node_lists) == (1 if arrival == "watch event" else 2), node_lists
    assert_split_exactly(receiver.received, container, client.sent)


def test_pod_metadata_arriving_mid_run_loses_no_byte_at_a_slower_exporter(
        tmp_path, container, receiver, server):
    """The same with a second exporter of the profile, hourly: it exports the
    first snapshot and the final one only, and must still get every byte."""
    with FakeApiServer() as api, OtlpGrpcReceiver() as hourly:
        agent = cluster_agent(tmp_path, api, receiver, hourly_endpoint=hourly.endpoint)
        try:
            client = send_while_pod_metadata_arrives(api, receiver, container, server)
        finally:
            agent.stop()
    assert_split_exactly(receiver.received, container, client.sent)
    assert_split_exactly(hourly.received, container, client.sent)


def test_a_peer_address_that_is_a_pod_ip_names_that_pod(tmp_path, receiver):
    """A pod of another node (node-b) has status.podIP 127.0.0.7; a client
    connects to a server listening there. The cluster-wide watch of the
    stand-in API server names the peer on the client's series."""
    peer_server = EchoCountServer("127.0.0.7")
    try:
        with FakeApiServer() as api:
            api.add(make_pod("db-0", namespace="data", node="node-b", ip="127.0.0.7",
                             owner=("StatefulSet", "db")))
            agent = cluster_agent(tmp_path, api, receiver)
            try:
                run_client("127.0.0.7", peer_server.port, send_bytes=4_096, name="igm-to-db")
                peer_server.wait_for(1)
            finally:
                agent.stop()
    finally:
        peer_server.close()
    [(attributes, sent)] = latest(receiver.received, "tcp.sent", {"process.command": "igm-to-db"})
    assert sent == 4_096
    assert attributes["network.peer.address"] == "127.0.0.7"
    assert attributes["k8s.peer.pod.name"] == "db-0"
    assert attributes["k8s.peer.namespace.name"] == "data"
    # The server's side: its peer, 127.0.0.1, is no pod's.
    serving = latest(receiver.received, "tcp.received", {"server.port": peer_server.port,
                                                         "tcp.connection.direction": "inbound"})
    assert [value for _, value in serving] == [4_096]
    assert not any(name.startswith("k8s.peer.") for name in serving[0][0])


# --- attribute selection ------------------------------------------------------------
REPLICA_SIZES = (10_001, 20_002, 30_003)


def run_replicas(agent, receiver, server, container) -> list:
    """Three processes named igm-replica in the container, each sending one of
    REPLICA_SIZES to `server` while `agent` runs; the agent stopped after."""
    try:
        agent.wait_attached(receiver)
        clients = [run_client("127.0.0.1", server.port, send_bytes=size, name="igm-replica",
                              prefix=container.prefix) for size in REPLICA_SIZES]
        server.wait_for(3)
    finally:
        agent.stop()
    return clients


def test_by_default_a_containers_processes_of_one_command_sum_exactly(tmp_path, container,
                                                                       receiver, server):
    """No `attributes:`: three processes of one container, alike but for their
    pids (which series leave out by default), make one series of their exact
    sum."""
    clients = run_replicas(start_agent(tmp_path, "tcp", receiver.endpoint), receiver,
                           server, container)
    assert len({client.pid for client in clients}) == 3
    for _, data, point in iter_points(receiver.received):
        if data.name.startswith("tcp."):
            assert "process.pid" not in dict(attributes_of(point.attributes)), data.name
    mine = {"process.command": "igm-replica", "container.id": container.container_id}
    [(attributes, sent)] = latest(receiver.received, "tcp.sent", mine)
    assert sent == 60_006
    assert attributes["k8s.pod.uid"] == container.pod_uid
    assert latest(receiver.received, "tcp.received", mine) == [(attributes, 3 * 2_345)]
    assert latest(receiver.received, "tcp.connections.opened", mine) == [(attributes, 3)]


def test_opting_in_process_pid_keeps_a_containers_processes_apart(tmp_path, container,
                                                                  receiver, server):
    """`attributes: {opt_in: [process.pid]}`: the same three processes, a
    series each, each exact, with its pid."""
    clients = run_replicas(start_agent(tmp_path, "tcp", receiver.endpoint,
                                       attributes="{opt_in: [process.pid]}"),
                           receiver, server, container)
    mine = {"process.command": "igm-replica", "container.id": container.container_id}
    sent = {attributes["process.pid"]: value
            for attributes, value in latest(receiver.received, "tcp.sent", mine)}
    assert sent == {client.pid: size for client, size in zip(clients, REPLICA_SIZES)}


def test_including_only_command_and_container_keeps_containers_apart(tmp_path, container,
                                                                      receiver, server):
    """`attributes: {include: [process.command, container.id]}`: series carry
    those alone; processes of one name sum exactly per container, and the
    host's stay apart from the container's."""
    agent = start_agent(tmp_path, "tcp", receiver.endpoint,
                        attributes="{include: [process.command, container.id]}")
    try:
        agent.wait_attached(receiver)
        for size in (1_111, 2_222):
            run_client("127.0.0.1", server.port, send_bytes=size, name="igm-same",
                       prefix=container.prefix)
        run_client("127.0.0.1", server.port, send_bytes=4_444, name="igm-same")
        server.wait_for(3)
    finally:
        agent.stop()
    for _, data, point in iter_points(receiver.received):
        if data.name.startswith("tcp."):
            names = set(dict(attributes_of(point.attributes)))
            assert names <= {"process.command", "container.id", "network.io.direction"}, \
                (data.name, names)
    assert sorted(latest(receiver.received, "tcp.sent", {"process.command": "igm-same"}),
                  key=lambda item: item[1]) == [
        ({"process.command": "igm-same", "container.id": container.container_id}, 3_333),
        ({"process.command": "igm-same"}, 4_444)]
