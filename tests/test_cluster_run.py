"""`run --cluster` and `top --cluster` end to end against a cluster made of
stand-ins: tests/k8s_apiserver.py STANDS IN FOR THE API SERVER and
tests/k8s_kubelet.py STANDS IN FOR THE KUBELETS, running the DaemonSet the CLI
creates as real `ig-metrics run` processes, one per fake node, each in its
own network namespace with NODE_NAME set (the nodes of test_k8s_multinode).
Every object the CLI sends, and every pod the stand-in makes, is validated
against the Kubernetes OpenAPI schemas. The CLI reads the nodes only through
the API server (pods/proxy, pods/log); real traffic of known size on two
nodes must show in its table and totals exactly. node-c's image pull fails
(the stand-in says so), node-d has no BPF (its process runs without
CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN, so `ig-metrics run` refuses to start
and the pod restarts)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from ig_metrics.cluster.api import connect
from ig_metrics.cluster.watch import ClusterWatch
from ig_metrics.deploy.manifests import HEALTH_PORT, RUN_LABEL
from ig_metrics.gadgets import resolve
from ig_metrics.ui.cluster import ClusterLiveView, render
from tests.k8s_apiserver import FakeApiServer, write_kubeconfig
from tests.k8s_kubelet import FakeNode, Kubelet
from tests.receivers import OtlpGrpcReceiver
from tests.test_k8s_attribution import resources
from tests.test_k8s_multinode import NODE_WORKLOAD, simulated_nodes

pytestmark = pytest.mark.bpf

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
NAMESPACE = "ig-metrics"
IMAGE = "registry.example/ig-metrics:test"
SIZES = {"node-a": 111_111, "node-b": 222_222}
SORTS = ["tcp.sent", "process.executions"]      # of the run's gadgets: tcp, exec
NO_BPF = ["setpriv", "--bounding-set=-bpf,-perfmon,-sys_admin",
          "--inh-caps=-bpf,-perfmon,-sys_admin", "--"]


class StandIn:
    """The API server, its kubelets, the nodes, and the OTLP receiver the
    profile's own exporter pushes to from every node."""

    def __init__(self, api, kubelet, nodes, receiver, kubeconfig, profiles) -> None:
        self.api, self.kubelet, self.nodes = api, kubelet, nodes
        self.receiver, self.kubeconfig, self.profiles = receiver, kubeconfig, profiles


@pytest.fixture(scope="module")
def standin(tmp_path_factory, bpf_available):
    workdir = tmp_path_factory.mktemp("cluster")
    with simulated_nodes("abd", tag="c", subnet=f"10.234.{os.getpid() % 250}") as (bridge, nodes), \
            OtlpGrpcReceiver(host=bridge) as receiver, FakeApiServer() as api:
        api.existing_namespaces.add(NAMESPACE)
        fakes = [FakeNode(node.name, node.address, prefix=node.prefix, cgroup=node.cgroup,
                          wrapper=NO_BPF if node.name == "node-d" else [])
                 for node in nodes]
        fakes.insert(2, FakeNode("node-c", "192.0.2.3", image_pull_fails=True))
        kubelet = Kubelet(api, fakes, workdir / "kubelet")
        profiles = workdir / "profiles"
        profiles.mkdir()
        # No Prometheus exporter: the run adds one for the CLI to read.
        (profiles / "cluster.yaml").write_text(f"""
exporters:
  collector: {{type: otlp-grpc, endpoint: "{receiver.endpoint}", insecure: true}}
  scrape: {{type: prometheus, listen: "127.0.0.1:9464"}}
profiles:
  pushed: {{exporters: [collector], interval: 1s}}
  scraped: {{exporters: [scrape], interval: 1s}}
""")
        try:
            yield StandIn(api, kubelet, {node.name: node for node in nodes}, receiver,
                           write_kubeconfig(workdir / "kubeconfig", api), profiles)
        finally:
            kubelet.stop()


class Cli:
    """An ig-metrics command in the background, its stderr (the log) in a file."""

    def __init__(self, workdir: Path, *args: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "stderr"
        self.started = time.monotonic()
        with open(self.log, "wb") as stderr:
            self.process = subprocess.Popen([IG_METRICS, *args], stdout=subprocess.DEVNULL,
                                            stderr=stderr)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = list(re.finditer(pattern, self.text(), re.MULTILINE))
            if found:
                return found[-1]
            assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {pattern!r} after {timeout}s:\n{self.text()}"
            time.sleep(0.2)

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def send_known_traffic(standin: StandIn) -> None:
    """SIZES[node] bytes each way over one connection inside each node's container."""
    workloads = {name: subprocess.Popen(
        [*node.prefix, *node.container.prefix, sys.executable, "-c", NODE_WORKLOAD,
         str(SIZES[name])], stdout=subprocess.PIPE, text=True)
        for name, node in standin.nodes.items() if name in SIZES}
    for name, workload in workloads.items():
        out, _ = workload.communicate(timeout=60)
        assert workload.returncode == 0 and int(out) == SIZES[name]


def totals_line(name: str, size: int) -> str:
    """The node's line: with several gadgets, tcp's part starts with its name."""
    return (rf"^.*{name}: ready; (tcp: )?\d+ series; tcp\.sent {size:,} B; "
            rf"tcp\.received {size:,} B;.*$")


def test_run_cluster_reads_every_node_reports_failed_ones_and_deletes_what_it_made(
        standin, tmp_path):
    api, kubelet = standin.api, standin.kubelet
    cli = Cli(tmp_path, "run", "--gadget", "tcp,exec", "--profile", "pushed", "--profiles-dir",
              str(standin.profiles), "--cluster", "--kubeconfig", str(standin.kubeconfig),
              "--namespace", NAMESPACE, "--image", IMAGE, "--no-tui")
    run_id = cli.wait_for(r"^run ([0-9a-f]{6}): DaemonSet ig-metrics-tcp-exec-\1 ").group(1)
    # Progress per node; the failed node named with its pod's reason, by name.
    cli.wait_for(r"node-a: (pending|pulling)", timeout=30)
    cli.wait_for(r'node-c: failed \((ErrImagePull|ImagePullBackOff): .*registry\.example/'
                 r'ig-metrics:test')
    cli.wait_for(r"first cluster table after")
    send_known_traffic(standin)
    for name, size in SIZES.items():
        cli.wait_for(totals_line(name, size), timeout=30)
    # The node without BPF: restarting, and its log's line says why.
    cli.wait_for(r"^.*node-d: failed \(CrashLoopBackOff.*restarted \d+x, last exit 1"
                 r".*its log: .*CAP_BPF.*$")
    assert "node-c: failed" in cli.text()

    # The table of the same nodes, read as the CLI reads them (through the API server).
    cluster = connect(standin.kubeconfig)
    specs = [resolve("tcp"), resolve("exec")]
    with ClusterWatch(cluster, NAMESPACE, f"{RUN_LABEL}={run_id}", HEALTH_PORT,
                      sort="tcp.sent", top=50) as watch:
        reading = watch.read(budget=10)
        while len(reading.ready()) < len(SIZES):
            reading = watch.read(budget=10)
    console = Console(record=True, width=400)
    console.print(render(specs, reading, title="cluster", top=50, sorts=SORTS))
    table = console.export_text()
    cluster.close()
    for name, size in SIZES.items():
        # One row per direction of the connection, each with the node's bytes.
        rows = [line for line in table.split("cluster · exec")[0].splitlines()
                if line.startswith(f"│{name} ")]
        assert len(rows) == 2, table
        assert all(f"{size:,} B ·" in row for row in rows), table
        assert re.search(totals_line(name, size), table, re.MULTILINE), table
    assert re.search(r"node-c: failed \((ErrImagePull|ImagePullBackOff)", table)
    # The same through the live view, drawn on a terminal.
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=400, color_system=None)
    with ClusterLiveView(specs, title="cluster", top=50, sorts=SORTS,
                         console=terminal) as view:
        view.update(reading)
    assert "cluster · exec" in screen.getvalue()
    assert re.search(totals_line("node-b", SIZES["node-b"]), screen.getvalue(), re.MULTILINE)

    assert sorted((obj["kind"], obj["metadata"]["name"]) for obj in api.stored()) == [
        ("ConfigMap", f"ig-metrics-tcp-exec-{run_id}-profiles"),
        ("DaemonSet", f"ig-metrics-tcp-exec-{run_id}"),
        ("ServiceAccount", f"ig-metrics-tcp-exec-{run_id}")]
    assert {obj["metadata"]["labels"][RUN_LABEL] for obj in api.stored()} == {run_id}
    processes = kubelet.processes()
    assert len(processes) >= 3            # node-a, node-b, and node-d's first try at least

    assert cli.interrupt() == 0, cli.text()
    # Every object the run created is gone, its pods too, and no node process runs.
    assert api.stored() == []
    assert api.pods_of(NAMESPACE, None) == []
    assert all(process.poll() is not None for process in kubelet.processes())
    writes = api.mutations()
    assert sorted(method for method, _ in writes) == ["DELETE"] * 3 + ["POST"] * 3, writes
    assert api.invalid == [] and kubelet.invalid == []
    assert "every pod of the run has ended" in cli.text()
    # The profile's own exporter ran on each node as well.
    senders = {resource.get("k8s.node.name") for resource, _ in
               resources(standin.receiver.received)}
    assert {"node-a", "node-b"} <= senders


def test_top_cluster_reads_a_standing_deployment_and_creates_nothing(standin, tmp_path):
    api = standin.api
    manifests = subprocess.run(
        [IG_METRICS, "deploy", "--gadget", "tcp", "--profile", "scraped", "--profiles-dir",
         str(standin.profiles), "--namespace", NAMESPACE, "--image", IMAGE],
        capture_output=True, text=True, check=True).stdout
    apply(standin, list(yaml.safe_load_all(manifests)))
    before = api.mutations()
    cli = Cli(tmp_path, "top", "--cluster", "--kubeconfig", str(standin.kubeconfig),
              "--namespace", NAMESPACE, "--no-tui")
    cli.wait_for(r"first cluster table after")
    send_known_traffic(standin)
    for name, size in SIZES.items():
        cli.wait_for(totals_line(name, size), timeout=30)
    assert cli.interrupt() == 0, cli.text()
    assert api.mutations() == before
    assert {obj["kind"] for obj in api.stored()} >= {"DaemonSet", "ConfigMap"}
    delete_all(standin)


def apply(standin: StandIn, manifests: list[dict]) -> None:
    """What `kubectl apply -f -` would send, through the official client."""
    from kubernetes import config, utils
    client = config.new_client_from_config(str(standin.kubeconfig))
    for manifest in manifests:
        utils.create_from_dict(client, manifest)
    assert standin.api.invalid == []
    client.close()


def delete_all(standin: StandIn) -> None:
    from kubernetes import client as k8s
    from kubernetes import config
    client = config.new_client_from_config(str(standin.kubeconfig))
    k8s.AppsV1Api(client).delete_namespaced_daemon_set("ig-metrics-tcp", NAMESPACE)
    deadline = time.monotonic() + 60
    while standin.api.pods_of(NAMESPACE, None) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert standin.api.pods_of(NAMESPACE, None) == []
    client.close()
