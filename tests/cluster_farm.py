"""THIS STANDS IN FOR THE NODES OF A LARGE CLUSTER; there is none here. Attached
to the stand-in API server (tests/k8s_apiserver.py) as its kubelet, it makes one
pod per fake node (validated against the Kubernetes schemas, as the stand-in
validates every pod) and answers the pods/proxy requests the API server
forwards to them: a node's agent's /summary, built by the real encoder
(summary/node.py) from rows that change at every request, as a busy node's do,
after a per-request latency (what a real API server and kubelet add). A node
may be told to hang (its answer waits until released) or to speak another
summary format (an agent of another version).

What differs from a real node, and why: no gadget runs (the tests of real
nodes are test_cluster_run.py); the rows are made up, each node's `series`
series summed exactly in its totals, so that a reader's merge can be checked."""

from __future__ import annotations

import json
import random
import threading
import time

from ig_metrics.summary.node import (
    FORMAT,
    SUMMARY_PATH,
    AgentCost,
    ExporterLine,
    GadgetSummary,
    NodeSummary,
    encode,
)
from ig_metrics.summary.rows import Row
from tests.k8s_apiserver import FakeApiServer, make_pod

SENT, RECEIVED, DURATION = "tcp.sent", "tcp.received", "tcp.connect.duration"


class SummaryFarm:
    """`nodes` fake nodes running `selector`'s DaemonSet, each with `series` tcp series."""

    def __init__(self, api: FakeApiServer, nodes: int, *, namespace: str, labels: dict,
                 series: int = 20_000, latency: tuple[float, float] = (0.0, 0.0),
                 seed: int = 1) -> None:
        self.api = api
        self.series = series
        self.latency = latency
        self.names = [f"node-{index:04d}" for index in range(nodes)]
        self._index = {name: index for index, name in enumerate(self.names)}
        self.hung: dict[str, threading.Event] = {}
        self.formats: dict[str, int] = {}        # node -> the summary format it speaks
        self.requests = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        api.kubelet = self
        for name in self.names:
            api.add(make_pod(f"ig-metrics-{name}", namespace=namespace, node=name,
                             labels=labels, containers=(("ig-metrics", "containerd://" +
                                                         "b" * 64),)))

    # --- what the stand-in API server asks of its kubelet --------------------------------
    def proxy(self, pod: dict, scheme: str, port: int, path: str) -> tuple[int, bytes, str]:
        node = pod["spec"]["nodeName"]
        with self._lock:
            self.requests += 1
            delay = self._random.uniform(*self.latency)
        hang = self.hung.get(node)
        if hang is not None:
            hang.wait()
        time.sleep(delay)
        if not path.startswith(SUMMARY_PATH):
            return 404, b"404 page not found\n", "text/plain"
        top = int(path.partition("top=")[2].partition("&")[0] or 20)
        return 200, self.summary(node, top), "application/json"

    def log(self, pod: dict, previous: bool, tail: int) -> tuple[int, bytes]:
        return 200, b"attached\n"

    # --- the nodes ------------------------------------------------------------------------
    def hang(self, node: str) -> threading.Event:
        """Make `node` answer nothing until the returned event is set."""
        self.hung[node] = threading.Event()
        return self.hung[node]

    def node_index(self, node: str) -> int:
        return self._index[node]

    def rate(self, node: str, rank: int) -> float:
        """Bytes per second of the node's `rank`-th busiest series (interleaved
        across nodes, so that a merge must take rows of many)."""
        return float((self.series - rank) * 1000 + self.node_index(node))

    def summary(self, node: str, top: int) -> bytes:
        elapsed = time.monotonic() - self._started
        rows = [Row((("network.peer.address", f"10.{rank // 250}.{rank % 250}.1"),
                     ("process.command", f"worker-{rank}"), ("process.pid", 1000 + rank)),
                    {SENT: self.rate(node, rank), RECEIVED: self.rate(node, rank) / 2,
                     DURATION: (0.001, 0.064)},
                    {SENT: round(self.rate(node, rank) * elapsed),
                     RECEIVED: round(self.rate(node, rank) / 2 * elapsed)})
                for rank in range(min(top, self.series))]
        # Every series' rate summed (in closed form: the farm must stay light):
        # the exact totals of what the node counted.
        rate_sum = float(1000 * self.series * (self.series + 1) // 2
                         + self.series * self.node_index(node))
        totals = {SENT: round(rate_sum * elapsed), RECEIVED: round(rate_sum / 2 * elapsed)}
        summary = NodeSummary("0.1.0", time.time_ns(), 1.0, 1.0,
                              (GadgetSummary("tcp", SENT, self.series, totals, rows),),
                              (ExporterLine("prom", "prometheus", "healthy", 1.0),),
                              AgentCost(1.5, 120_000_000, 0.004))
        payload = encode(summary)
        speaks = self.formats.get(node, FORMAT)
        if speaks != FORMAT:
            document = json.loads(payload)
            document["format"], document["version"] = speaks, "9.0.0"
            payload = json.dumps(document).encode()
        return payload
