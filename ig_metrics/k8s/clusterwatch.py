"""One reading of a DaemonSet's nodes, as the cluster table and the progress
lines show it: each pod's state (pending, pulling, running, ready, failed,
with the pod's reason and restarts), and for a ready pod its metrics read
through the pod proxy; for a failed or restarting one the last line of its
log, which says why (no BPF on that node, a profile it cannot use)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.k8s.cluster import (
    FAILED, READY, RUNNING, Cluster, ClusterError, PodState, last_log_line, pod_state,
)
from ig_metrics.k8s.nodemetrics import ExpositionReader, NodeMetrics
from ig_metrics.k8s.podprofiles import ScrapeEndpoint

METRICS_PATH = "/metrics"


@dataclass
class NodeReading:
    """What one node shows at one reading; `previous` is the reading before,
    for rates."""

    pod: PodState
    metrics: NodeMetrics | None = None
    previous: NodeMetrics | None = None
    why: str = ""                # the pod log's last line, for a failed or restarting pod
    read_error: str = ""         # the proxy read failed (the node line says so)

    @property
    def node(self) -> str:
        return self.pod.node or f"(unscheduled {self.pod.name})"


@dataclass
class ClusterReading:
    nodes: list[NodeReading] = field(default_factory=list)
    time_ns: int = 0

    def ready(self) -> list[NodeReading]:
        return [node for node in self.nodes if node.metrics is not None]

    def export_interval(self) -> float:
        """The shortest export interval the ready nodes report (0: none said):
        how often their numbers change."""
        intervals = [exporter.interval for node in self.ready()
                     for exporter in node.metrics.exporters if exporter.interval > 0]
        return min(intervals, default=0.0)


class ClusterWatch:
    """Reads the pods matching `selector` and their metrics, one call at a time."""

    def __init__(self, cluster: Cluster, namespace: str, selector: str, spec: GadgetSpec,
                 endpoint: ScrapeEndpoint) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.selector = selector
        self.spec = spec
        self.endpoint = endpoint
        self._readers: dict[str, ExpositionReader] = {}
        self._last: dict[str, tuple[str, NodeMetrics | None, NodeMetrics | None]] = {}
        self._why: dict[tuple[str, int], str] = {}    # (pod, restarts) -> log line

    def pods(self) -> list[PodState]:
        states = [pod_state(pod) for pod in self.cluster.pods(self.namespace, self.selector)]
        return sorted(states, key=lambda state: (state.node, state.name))

    def read(self) -> ClusterReading:
        reading = ClusterReading(time_ns=time.time_ns())
        for pod in self.pods():
            node = NodeReading(pod)
            if pod.state in (READY, RUNNING):
                self._read_metrics(node)
            if pod.state == FAILED or pod.crashed:
                node.why = self._log_line(pod)
            reading.nodes.append(node)
        return reading

    def _read_metrics(self, node: NodeReading) -> None:
        pod = node.pod
        try:
            text = self.cluster.proxy_get(self.namespace, pod.name, self.endpoint.port,
                                          METRICS_PATH, self.endpoint.scheme)
        except ClusterError as error:
            # A pod that is running but not serving yet (compiling its gadget),
            # or one the proxy cannot reach: the node line says so, the others go on.
            node.read_error = str(error)
            node.metrics = None
            return
        # The node serves a new exposition once per its export interval: rates
        # are taken between two different ones, at the times they were first seen.
        last_text, previous, current = self._last.get(pod.name, ("", None, None))
        if text != last_text:
            reader = self._readers.setdefault(pod.name, ExpositionReader(self.spec))
            previous, current = current, reader.read(text)
            self._last[pod.name] = (text, previous, current)
        node.previous, node.metrics = previous, current

    def _log_line(self, pod: PodState) -> str:
        key = (pod.name, pod.restarts)
        if key not in self._why:
            try:
                text = self.cluster.log_tail(self.namespace, pod.name, previous=pod.restarts > 0)
            except ClusterError:
                # No previous container (not started yet) or no log right: the
                # pod's reason is all there is to show.
                return ""
            line = last_log_line(text)
            if not line:
                return ""
            self._why[key] = line
        return self._why[key]
