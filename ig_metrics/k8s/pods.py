"""Pod metadata for attribution: a watch of this node's pods (pod uid -> names,
containers, owner workload) and of the cluster's pod IPs (peer address -> pod),
kept by background threads. Lookups never wait: they answer with what is known."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ig_metrics.k8s.apiclient import KubernetesUnavailable, api_client
from ig_metrics.k8s.podinfo import PeerPod, PodInfo
from ig_metrics.k8s.podstores import ChangeListener, PeerIndex, PodStore, Tee, no_listener
from ig_metrics.k8s.reflector import (
    DEFAULT_BACKOFF_INITIAL,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WATCH_TIMEOUT,
    Reflector,
)
from ig_metrics.retry.backoff import Backoff

# Where the peer index comes from: every pod of the cluster (one more watch,
# of all pods, per node), this node's pods only, or nowhere.
PEER_SCOPES = ("cluster", "node", "off")
DEFAULT_MAX_PODS = 1024            # kubelet runs at most 110 pods per node by default
DEFAULT_MAX_PEER_PODS = 150_000    # Kubernetes' tested limit for a whole cluster


@dataclass(frozen=True)
class PodCacheConfig:
    """How the pod cache finds the API server and what it keeps."""

    # The node whose pods are watched; the DaemonSet sets NODE_NAME from spec.nodeName.
    node_name: str | None = field(default_factory=lambda: os.environ.get("NODE_NAME") or None)
    kubeconfig: Path | None = None     # None: in-cluster, else $KUBECONFIG or ~/.kube/config
    include_labels: bool = False       # k8s.pod.label.<key>: opt-in, labels multiply series
    peers: str = "cluster"             # one of PEER_SCOPES
    max_pods: int = DEFAULT_MAX_PODS
    max_peer_pods: int = DEFAULT_MAX_PEER_PODS
    watch_timeout: int = DEFAULT_WATCH_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL   # seconds before the first reconnection
    backoff_max: float = DEFAULT_BACKOFF_MAX

    def __post_init__(self) -> None:
        if self.peers not in PEER_SCOPES:
            raise ValueError(f"peers must be one of {', '.join(PEER_SCOPES)}, not {self.peers!r}")
        if self.max_pods < 1 or self.max_peer_pods < 1:
            raise ValueError("max_pods and max_peer_pods must be at least 1")


class PodCache:
    """pod(uid) and peer(ip), answered from memory that watches keep current.

    start() raises KubernetesUnavailable when there are no credentials or no
    node name; everything after that (the API server down, a watch expired)
    happens in the background and is retried with backoff."""

    def __init__(self, config: PodCacheConfig | None = None, *, client=None,
                 on_pod_change: ChangeListener = no_listener,
                 on_peer_change: ChangeListener = no_listener) -> None:
        self.config = config or PodCacheConfig()
        self._client = client              # a kubernetes.client.ApiClient; None: from config
        self.pods = PodStore(self.config.max_pods, include_labels=self.config.include_labels,
                             on_change=on_pod_change)
        self.peers = PeerIndex(self.config.max_peer_pods, on_change=on_peer_change)
        self.reflectors: list[Reflector] = []

    def start(self) -> None:
        if self.reflectors:
            raise RuntimeError("the pod cache is already started")
        if not self.config.node_name:
            raise KubernetesUnavailable(
                "no node name: set NODE_NAME (the DaemonSet of 'ig-metrics deploy' sets it "
                "from spec.nodeName through the downward API)")
        if self._client is None:
            self._client = api_client(self.config.kubeconfig)
        from kubernetes.client import CoreV1Api

        list_pods = CoreV1Api(self._client).list_pod_for_all_namespaces
        node_store = Tee(self.pods, self.peers) if self.config.peers == "node" else self.pods
        self.reflectors.append(self._reflector("node", list_pods, node_store,
                                               f"spec.nodeName={self.config.node_name}"))
        if self.config.peers == "cluster":
            self.reflectors.append(self._reflector("cluster", list_pods, self.peers, None))
        for reflector in self.reflectors:
            reflector.start()

    def _reflector(self, name, list_pods, store, field_selector) -> Reflector:
        return Reflector(name, list_pods, store, field_selector=field_selector,
                         watch_timeout=self.config.watch_timeout,
                         request_timeout=self.config.request_timeout,
                         backoff=Backoff(self.config.backoff_initial, self.config.backoff_max))

    def stop(self, timeout: float = 2.0) -> None:
        """Stops the watches; bounded by `timeout` (their threads are daemons)."""
        for reflector in self.reflectors:
            reflector.stop(timeout)

    def pod(self, uid: str) -> PodInfo | None:
        """This node's pod with that uid, if known now."""
        return self.pods.get(uid)

    def peer(self, ip: str) -> PeerPod | None:
        """The pod whose IP `ip` is, if known now (a host-network pod never is)."""
        return self.peers.get(ip)

    def wait_synced(self, timeout: float) -> bool:
        """True once every watch has had its first list, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        return all(reflector.synced.wait(max(0.0, deadline - time.monotonic()))
                   for reflector in self.reflectors)

    @property
    def last_errors(self) -> dict[str, str]:
        return {reflector.name: reflector.last_error for reflector in self.reflectors
                if reflector.last_error}
