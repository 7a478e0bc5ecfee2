"""One reading of a DaemonSet's nodes, as the cluster table and the progress
lines show it: each pod's state (from one watch: cluster/pods.py), and for a
ready pod its node summary (summary/node.py), read from the agent's /summary
through the pod proxy; for a failed or restarting pod the last line of its log,
which says why (no BPF on that node, a profile it cannot use).

Nodes are read concurrently (cluster/apireader.py: one event loop, at most
MAX_IN_FLIGHT requests at once), each read bounded by its own timeout. A
refresh waits for its reads for at most `budget` seconds: a node that answers
later, or never, keeps its last summary (the table shows how old it is) and
delays no other node. The nodes' state is kept and changed on the reader's
loop only."""

from __future__ import annotations

import asyncio
import time
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
    pod_log_path,
    pod_proxy_path,
)
from ig_metrics.cluster.apireader import ApiReader, ReadError
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
    pending: asyncio.Task[NodeSummary] | None = None


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
        self._reader = ApiReader(cluster, concurrency)
        self._nodes: dict[str, _Node] = {}
        self._why: dict[tuple[str, int], str] = {}    # (pod, restarts) -> log line
        self._why_pending: dict[tuple[str, int], asyncio.Task[str]] = {}

    def __enter__(self) -> ClusterWatch:
        self._reader.__enter__()
        try:
            self._pods.start()
        except BaseException:
            self._reader.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._pods.close()
        self._reader.close()             # reads in flight are cancelled

    def read(self, budget: float) -> ClusterReading:
        """The nodes now: reads started for every ready pod not being read,
        waited for at most `budget` seconds (the first time, with the pods' list)."""
        deadline = time.monotonic() + budget
        self._pods.wait_synced(budget)
        return self._reader.run(self._refresh(self._pods.states(), deadline))

    async def _refresh(self, pods: list[PodState], deadline: float) -> ClusterReading:
        started: list[asyncio.Task] = []
        for pod in pods:
            if pod.state in (READY, RUNNING):
                node = self._nodes.setdefault(pod.name, _Node())
                if node.pending is None:
                    node.pending = asyncio.create_task(self._read_summary(pod.name))
                    started.append(node.pending)
            if (pod.state == FAILED or pod.crashed) and (pod.name, pod.restarts) not in self._why:
                started.append(self._log_line(pod))
        if started:
            await asyncio.wait(started, timeout=max(0.0, deadline - time.monotonic()))
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
        reading.age = max(0.0, now - node.read_at) if node.summary is not None else 0.0
        reading.reading = node.pending is not None
        return reading

    def _take(self, node: _Node) -> None:
        task, node.pending = node.pending, None
        assert task is not None               # taken once done
        try:
            node.summary, node.read_at, node.error = task.result(), time.monotonic(), ""
        except (ClusterError, SummaryError) as error:
            # Running but not serving yet (compiling), unreachable, or an agent of
            # another version: the node line says so; its last summary stays.
            node.error = str(error)

    async def _read_summary(self, pod: str) -> NodeSummary:
        try:
            payload = await self._reader.get(
                pod_proxy_path(self.namespace, pod, self.port, self.path),
                what=f"get pods/proxy in namespace {self.namespace}", timeout=self.timeout)
        except ReadError as error:
            if error.status == 404:
                raise ClusterError(
                    f"the agent serves no {SUMMARY_PATH}: its image is older than this CLI "
                    "(deploy an image of this CLI's version)") from error
            raise
        return decode(payload)

    def _log_line(self, pod: PodState) -> asyncio.Task[str]:
        key = (pod.name, pod.restarts)
        pending = self._why_pending.get(key)
        if pending is None:
            pending = asyncio.create_task(self._read_log_line(pod))
            self._why_pending[key] = pending
            pending.add_done_callback(lambda done: self._keep_why(key, done))
        return pending

    def _keep_why(self, key: tuple[str, int], done: asyncio.Task[str]) -> None:
        line = done.result() if not done.cancelled() else ""
        if line:
            self._why[key] = line
        self._why_pending.pop(key, None)

    async def _read_log_line(self, pod: PodState) -> str:
        path = pod_log_path(self.namespace, pod.name, previous=pod.restarts > 0)
        try:
            text = await self._reader.get(path, what=f"get pods/log in namespace "
                                          f"{self.namespace}", timeout=self.timeout)
        except ClusterError:
            # No previous container (not started yet) or no log right: the pod's
            # reason is all there is to show.
            return ""
        return last_log_line(text.decode("utf-8", errors="replace"))
