"""The cluster view's reading of many nodes, without BPF: the CLI reads each
node's summary concurrently and a node that hangs delays no other; the merged
top N and the totals are exact; a summary stays small whatever a node's
series; an agent of another version is named, not misread. The nodes are
tests/cluster_farm.py, which STANDS IN FOR THE NODES OF A CLUSTER, behind
tests/k8s_apiserver.py, which STANDS IN FOR ITS API SERVER (every pod
validated against the Kubernetes schemas). The nodes that run real gadgets are
in test_cluster_run.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ig_metrics.cluster.api import connect
from ig_metrics.cluster.table import cluster_rows, cluster_totals
from ig_metrics.cluster.watch import ClusterWatch
from ig_metrics.deploy.manifests import DeployOptions, build_manifests
from ig_metrics.deploy.podprofiles import pod_profiles
from ig_metrics.gadgets import resolve
from ig_metrics.model.snapshot import COUNTER, MetricData, MetricInfo, Point, Snapshot
from ig_metrics.summary.node import NodeSummary, decode, encode, summarize
from ig_metrics.ui.cluster import node_line
from tests.cluster_farm import RECEIVED, SENT, SummaryFarm
from tests.k8s_apiserver import cluster_with_namespace

NAMESPACE = "ig-metrics"
LABELS = {"app.kubernetes.io/name": "ig-metrics", "app.kubernetes.io/component": "tcp"}
SELECTOR = ",".join(f"{key}={value}" for key, value in LABELS.items())
IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
PROFILES = Path(__file__).parent.parent / "ig_metrics" / "profiles"


@pytest.fixture
def api(tmp_path):
    with cluster_with_namespace(tmp_path, NAMESPACE) as server:
        yield server


def read_until(watch: ClusterWatch, done, budget: float = 2.0, tries: int = 50):
    for _ in range(tries):
        reading = watch.read(budget)
        if done(reading):
            return reading
    raise AssertionError(f"not read after {tries} refreshes: {reading}")


def test_a_node_that_hangs_delays_no_other(api):
    farm = SummaryFarm(api, 3, namespace=NAMESPACE, labels=LABELS, series=100)
    release = farm.hang("node-0001")
    cluster = connect(api.kubeconfig)
    try:
        with ClusterWatch(cluster, NAMESPACE, SELECTOR, 9465, sort="tcp.sent", top=5) as watch:
            first = read_until(watch, lambda reading: len(reading.ready()) == 2)
            later = [watch.read(0.5) for _ in range(3)]
            times = [{node.node: node.summary.time_ns for node in reading.ready()}
                     for reading in (first, *later)]
            # The others are read afresh at every refresh while one hangs...
            for name in ("node-0000", "node-0002"):
                assert all(earlier[name] < after[name] for earlier, after
                           in zip(times, times[1:])), times
            hung = next(node for node in later[-1].nodes if node.node == "node-0001")
            assert hung.summary is None and hung.reading
            assert "node-0001: ready; starting" in node_line([resolve("tcp")], hung) or \
                "node-0001: running; starting" in node_line([resolve("tcp")], hung)
            # ...and once it answers, it is read like them.
            release.set()
            read_until(watch, lambda reading: len(reading.ready()) == 3)
    finally:
        release.set()
        cluster.close()


def test_the_merged_top_rows_and_the_totals_are_exact(api):
    farm = SummaryFarm(api, 40, namespace=NAMESPACE, labels=LABELS, series=500)
    spec = resolve("tcp")
    cluster = connect(api.kubeconfig)
    try:
        with ClusterWatch(cluster, NAMESPACE, SELECTOR, 9465, sort="tcp.sent", top=20) as watch:
            reading = read_until(watch, lambda reading: len(reading.ready()) == 40)
    finally:
        cluster.close()
    rows = cluster_rows(spec, reading, top=20, sort=SENT)
    # Every series of every node, ranked: the merge of the nodes' top 20s must
    # be its top 20 exactly.
    everything = sorted(((farm.rate(node, rank), node) for node in farm.names
                         for rank in range(farm.series)), reverse=True)[:20]
    assert [(row.row.cells[SENT], row.node) for row in rows] == everything
    series, totals = cluster_totals(spec, reading)
    assert series == 40 * 500
    for name in (SENT, RECEIVED):
        assert totals[name] == sum(node.summary.gadget("tcp").totals[name]
                                   for node in reading.ready())
    # One request per node per refresh (and a few for the logs: none here).
    assert farm.requests == 40


def test_a_summary_stays_small_with_100k_series_and_its_totals_are_exact():
    spec = resolve("tcp")
    sent_info = MetricInfo(SENT, COUNTER, "By", "")
    received_info = MetricInfo(RECEIVED, COUNTER, "By", "")

    def reading(seq: int) -> Snapshot:
        sent, received = [], []
        for index in range(100_000):
            identity = (("network.peer.address", f"10.{index // 65536}.{index // 256 % 256}."
                                                  f"{index % 256}"),
                        ("process.command", f"a-rather-long-command-name-{index}"),
                        ("process.pid", 10_000 + index), ("server.port", 443))
            sent.append(Point(identity, (index % 977) * seq, 0))
            received.append(Point(identity, (index % 13) * seq, 0))
        return Snapshot(seq, seq * 1_000_000_000, "tcp", (),
                        (MetricData(sent_info, tuple(sent)),
                         MetricData(received_info, tuple(received))))

    previous, current = reading(1), reading(2)
    gadgets = summarize([spec], previous, current, sort=None, top=20, kept={}, failures={})
    payload = encode(NodeSummary("0.1.0", current.time_ns, 1.0, 1.0, gadgets))
    assert len(payload) <= 10_000, len(payload)
    gadget = decode(payload).gadget("tcp")
    assert gadget.series == 100_000 and len(gadget.rows) == 20
    assert gadget.totals[SENT] == sum((index % 977) * 2 for index in range(100_000))
    assert gadget.totals[RECEIVED] == sum((index % 13) * 2 for index in range(100_000))
    assert gadget.rows[0].cells[SENT] == 976.0          # bytes per second over 1 s


def test_an_agent_of_another_version_is_named_not_misread(api):
    farm = SummaryFarm(api, 2, namespace=NAMESPACE, labels=LABELS, series=10)
    farm.formats["node-0001"] = 2
    cluster = connect(api.kubeconfig)
    try:
        with ClusterWatch(cluster, NAMESPACE, SELECTOR, 9465, sort=None, top=5) as watch:
            reading = read_until(watch, lambda reading: len(reading.ready()) == 1
                                 and any(node.read_error for node in reading.nodes))
    finally:
        cluster.close()
    other = next(node for node in reading.nodes if node.node == "node-0001")
    assert other.summary is None
    assert ("the agent (ig-metrics 9.0.0) serves summary format 2, this CLI reads format 1"
            in node_line([resolve("tcp")], other))


def test_top_cluster_shows_a_read_node_while_another_never_starts_and_stops_on_sigint(
        api, tmp_path):
    options = DeployOptions("tcp", "local", namespace=NAMESPACE)
    profiles = pod_profiles(PROFILES, "local", {})
    daemon_set = build_manifests(options, profiles)[-1]
    cluster = connect(api.kubeconfig)
    cluster.create(daemon_set)
    cluster.close()
    labels = daemon_set["spec"]["selector"]["matchLabels"]
    farm = SummaryFarm(api, 2, namespace=NAMESPACE, labels=labels, series=10)
    # node-0001's pod is stuck in ContainerCreating (a slow pull, a volume that
    # will not mount): never ready, never read.
    stuck = api.pods_of(NAMESPACE, None)[1]
    stuck["status"]["phase"] = "Pending"
    stuck["status"]["containerStatuses"][0].update(
        ready=False, started=False, state={"waiting": {"reason": "ContainerCreating"}})
    api.modify(stuck)
    log = tmp_path / "stderr"
    with open(log, "wb") as stderr:
        process = subprocess.Popen([IG_METRICS, "top", "--cluster", "--kubeconfig",
                                    str(api.kubeconfig), "--namespace", NAMESPACE, "--no-tui"],
                                   stdout=subprocess.DEVNULL, stderr=stderr,
                                   env={**os.environ, "KUBECONFIG": ""})
    try:
        deadline = time.monotonic() + 60
        while not (re.search(r"node-0000: ready; 10 series; tcp\.sent [\d,]+ B", log.read_text())
                   and "node-0001: pulling (ContainerCreating)" in log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert farm.requests >= 1
