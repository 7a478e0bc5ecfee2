"""One reading of a DaemonSet's nodes, as the cluster table and the progress
lines show it: each pod's state (from one watch: cluster/pods.py), and for a
ready pod its node summary (summary/node.py), read from the agent's /summary
through the pod proxy; for a failed or restarting pod the last line of its log,
which says why (no BPF on that node, a profile it cannot use).

Nodes are read concurrently, at most MAX_IN_FLIGHT at once, each read bounded
by its own timeout. A refresh waits for its reads for at most `budget`
seconds: a node that answers later, or never, keeps its last summary (the
table shows how old it is) and delays no other node."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import quote

from ig_metrics.cluster.api import (
    FAILED,
    MAX_IN_FLIGHT,
    READY,
    RUNNING,
    Cluster,
    ClusterError,
    PodState,
    last_log_line,
)
from ig_metrics.cluster.pods import PodWatch
from ig_metrics.summary.node import SUMMARY_PATH, NodeSummary, SummaryError, decode

NODE_TIMEOUT = 5.0           # seconds one node's read may take through the API server


@dataclass
class NodeReading:
    """What one node shows at one reading: its latest summary, how old it is,
    and the one before (its exporters' progress)."""

    pod: PodState
    summary: NodeSummary | None = None
    age: float = 0.0             # seconds since `summary` was read
    why: str = ""                # the pod log's last line, for a failed or restarting pod
    read_error: str = ""         # the last read failed (the node line says so)
    reading: bool = False        # a read is in flight for longer than a refresh

    @property
    def node(self) -> str:
        return self.pod.node or f"(unscheduled {self.pod.name})"


@dataclass
class ClusterReading:
    nodes: list[NodeReading] = field(default_factory=list)
    time_ns: int = 0
    pods_error: str | None = None        # the pod watch fails (retried)

    def ready(self) -> list[NodeReading]:
        return [node for node in self.nodes if node.summary is not None]

    def export_interval(self) -> float:
        """The shortest interval the read nodes tick at (0: none read): how
        often their numbers change."""
        return min((node.summary.interval for node in self.nodes if node.summary is not None),
                   default=0.0)


@dataclass
class _Node:
    """What the watch keeps of one pod between refreshes."""

    summary: NodeSummary | None = None
    read_at: float = 0.0
    error: str = ""
    pending: Future | None = None


class ClusterWatch:
    """Reads the pods matching `selector` and their summaries, concurrently."""

    def __init__(self, cluster: Cluster, namespace: str, selector: str, port: int, *,
                 sort: str | None, top: int, concurrency: int = MAX_IN_FLIGHT,
                 timeout: float = NODE_TIMEOUT) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.selector = selector
        self.port = port
        self.timeout = timeout
        self.path = f"{SUMMARY_PATH}?top={top}" + (f"&sort={quote(sort)}" if sort else "")
        self._pods = PodWatch(cluster, namespace, selector)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="node-read")
        self._nodes: dict[str, _Node] = {}
        self._why: dict[tuple[str, int], str] = {}    # (pod, restarts) -> log line
        self._why_pending: dict[tuple[str, int], Future] = {}

    def __enter__(self) -> ClusterWatch:
        self._pods.start()
        return self

    def __exit__(self, *exc) -> None:
        self._pods.close()
        # Reads in flight end on their own timeout; nothing waits for them.
        self._pool.shutdown(wait=False, cancel_futures=True)

    def read(self, budget: float) -> ClusterReading:
        """The nodes now: reads started for every ready pod not being read,
        waited for at most `budget` seconds (the first time, with the pods' list)."""
        began = time.monotonic()
        self._pods.wait_synced(budget)
        pods = self._pods.states()
        started: list[Future] = []
        for pod in pods:
            if pod.state in (READY, RUNNING):
                node = self._nodes.setdefault(pod.name, _Node())
                if node.pending is None:
                    node.pending = self._pool.submit(self._read_summary, pod.name)
                    started.append(node.pending)
            if (pod.state == FAILED or pod.crashed) and (pod.name, pod.restarts) not in self._why:
                started.append(self._log_line(pod))
        if started:
            wait(started, timeout=max(0.0, budget - (time.monotonic() - began)))
        reading = ClusterReading(time_ns=time.time_ns(), pods_error=self._pods.error)
        now = time.monotonic()
        names = set()
        for pod in pods:
            names.add(pod.name)
            reading.nodes.append(self._reading(pod, now))
        for gone in set(self._nodes) - names:
            del self._nodes[gone]
        return reading

    def _reading(self, pod: PodState, now: float) -> NodeReading:
        node = self._nodes.get(pod.name)
        reading = NodeReading(pod, why=self._why.get((pod.name, pod.restarts), ""))
        if node is None:
            return reading
        if node.pending is not None and node.pending.done():
            self._take(node)
        if pod.state not in (READY, RUNNING):
            # Not serving now (restarting, terminating): no old numbers shown as current.
            return reading
        reading.summary, reading.read_error = node.summary, node.error
        reading.age = now - node.read_at if node.summary is not None else 0.0
        reading.reading = node.pending is not None
        return reading

    def _take(self, node: _Node) -> None:
        future, node.pending = node.pending, None
        assert future is not None             # taken once done
        try:
            node.summary, node.read_at, node.error = future.result(), time.monotonic(), ""
        except (ClusterError, SummaryError) as error:
            # Running but not serving yet (compiling), unreachable, or an agent of
            # another version: the node line says so; its last summary stays.
            node.error = str(error)

    def _read_summary(self, pod: str) -> NodeSummary:
        try:
            payload = self.cluster.proxy_get(self.namespace, pod, self.port, self.path,
                                             timeout=self.timeout)
        except ClusterError as error:
            if "404" in str(error) and "Not Found" in str(error):
                raise ClusterError(
                    f"the agent serves no {SUMMARY_PATH}: its image is older than this CLI "
                    "(deploy an image of this CLI's version)") from error
            raise
        return decode(payload)

    def _log_line(self, pod: PodState) -> Future:
        key = (pod.name, pod.restarts)
        pending = self._why_pending.get(key)
        if pending is None:
            pending = self._pool.submit(self._read_log_line, pod)
            self._why_pending[key] = pending
            pending.add_done_callback(lambda done: self._keep_why(key, done))
        return pending

    def _keep_why(self, key: tuple[str, int], done: Future) -> None:
        line = done.result() if not done.cancelled() and done.exception() is None else ""
        if line:
            self._why[key] = line
        self._why_pending.pop(key, None)

    def _read_log_line(self, pod: PodState) -> str:
        try:
            text = self.cluster.log_tail(self.namespace, pod.name, previous=pod.restarts > 0)
        except ClusterError:
            # No previous container (not started yet) or no log right: the pod's
            # reason is all there is to show.
            return ""
        return last_log_line(text)
