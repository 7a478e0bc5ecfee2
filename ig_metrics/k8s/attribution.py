"""What the cgroup and peer decoders ask while a gadget runs: the container and
pod of a cgroup id (from its path, and from the pod cache when the Kubernetes
API is reachable) and the pod of a peer address, each answer with what may
still change it, and the changes the pod watches saw since the sampler asked."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ig_metrics.bpf.cgroupfs import NoCgroup2Mount
from ig_metrics.k8s.apiclient import KubernetesUnavailable
from ig_metrics.k8s.cgrouprecorder import (
    WITHOUT,
    CgroupRecorder,
    RecorderUnavailable,
    start_recorder,
)
from ig_metrics.k8s.cgroups import CgroupResolver
from ig_metrics.model.semconv import (
    CONTAINER_ID,
    CONTAINER_NAME,
    CONTAINER_RUNTIME,
    NAMESPACE,
    POD_NAME,
    POD_UID,
)
from ig_metrics.model.snapshot import Attributes, AttrValue

if TYPE_CHECKING:      # the kubernetes client is imported only when a pod cache starts
    from ig_metrics.k8s.pods import PodCache

log = logging.getLogger("ig_metrics.k8s")

# What an answer may wait on: a cgroup whose path is not known yet (asked
# again every tick), a pod uid or a peer IP (asked again when the watch says
# it changed).
CGROUP, POD, PEER = "cgroup", "pod", "peer"
Token = tuple[str, object]
# Past this many changes between two ticks, a whole kind counts as changed:
# the set stays small whatever the churn of a large cluster.
MAX_PENDING_CHANGES = 10_000


@dataclass(frozen=True, slots=True)
class ContainerParts:
    """A cgroup's attributes, in the groups a cgroup decoder's `part` names."""

    container: Attributes = ()      # container.id, container.runtime.name
    pod: Attributes = ()            # k8s.pod.uid, and the pod's and container's names
    owner: Attributes = ()          # the workload: k8s.deployment.name, …
    labels: Attributes = ()         # k8s.pod.label.<key>, only when asked for

    def select(self, part: str) -> Attributes:
        """The attributes of one part, or of every part for "all"."""
        if part == "all":
            return self.container + self.pod + self.owner + self.labels
        return getattr(self, part)


NO_CONTAINER = ContainerParts()


@dataclass(frozen=True, slots=True)
class Changes:
    """What the pod watches changed since the last take_changes()."""

    tokens: frozenset[Token] = frozenset()
    everything: frozenset[str] = frozenset()     # kinds (POD, PEER) changed as a whole


class Attribution:
    """Answers for decoders; `cgroups` None: no cgroup v2 here, `pods` None:
    no Kubernetes API (names then come from cgroup paths alone), `recorder`
    None: new cgroups' paths are not recorded in the kernel. The decoders'
    side is not thread-safe (one sampler); the watches' side may call in from
    their threads."""

    def __init__(self, cgroups: CgroupResolver | None = None,
                 pods: PodCache | None = None,
                 recorder: CgroupRecorder | None = None) -> None:
        self.cgroups = cgroups
        self.pods = pods
        self.recorder = recorder
        self._lock = threading.Lock()
        self._tokens: set[Token] = set()
        self._everything: set[str] = set()

    @property
    def summary(self) -> str:
        """Which attribution is active, in a few words."""
        if self.cgroups is None:
            return "none"
        return "cgroup + Kubernetes API" if self.pods is not None else "cgroup only"

    def attach(self) -> None:
        """Right before the gadget attaches: record the path of every cgroup
        made from now on, then walk the hierarchy for those there already.
        Every cgroup the gadget can see is then known, even one gone before
        the sampler reads its counts. Without the recorder, nothing to do."""
        if self.recorder is None:
            return
        assert self.cgroups is not None        # a recorder comes with the cgroups it serves
        try:
            self.recorder.attach()
        except RecorderUnavailable as error:
            log.warning("attribution: the paths of new cgroups are not recorded (%s): %s",
                        error, WITHOUT)
            self._close_recorder()
            return
        self.cgroups.paths.recorded = self.recorder.path
        self.cgroups.paths.refresh()

    # --- answers --------------------------------------------------------------------
    def container(self, cgroup_id: int) -> tuple[ContainerParts, tuple[Token, ...]]:
        """The container and pod of `cgroup_id`, and what the answer waits on."""
        if not cgroup_id or self.cgroups is None:
            return NO_CONTAINER, ()
        identity = self.cgroups.identity(cgroup_id)
        if identity is None:
            if self.cgroups.paths.known_gone(cgroup_id):
                return NO_CONTAINER, ()
            return NO_CONTAINER, ((CGROUP, cgroup_id),)
        if identity.container_id is None and identity.pod_uid is None:
            return NO_CONTAINER, ()       # a host process (a systemd service, a session)
        uid = identity.pod_uid
        if uid is None or self.pods is None:
            return ContainerParts(_present((CONTAINER_ID, identity.container_id),
                                           (CONTAINER_RUNTIME, identity.runtime)),
                                  _present((POD_UID, uid))), ()
        # A pod's metadata may arrive or change at any time: the answer always
        # waits on its uid.
        waits = ((POD, uid),)
        pod = self.pods.pod(uid)
        if pod is None:
            return ContainerParts(_present((CONTAINER_ID, identity.container_id),
                                           (CONTAINER_RUNTIME, identity.runtime)),
                                  ((POD_UID, uid),)), waits
        runtime, container_name = identity.runtime, None
        known = pod.containers.get(identity.container_id) if identity.container_id else None
        if known is not None:
            # containerStatuses say which runtime (cri-dockerd names its
            # cgroups as containerd does).
            runtime, container_name = known.runtime or runtime, known.name
        return ContainerParts(
            _present((CONTAINER_ID, identity.container_id), (CONTAINER_RUNTIME, runtime)),
            _present((POD_UID, uid), (POD_NAME, pod.name), (NAMESPACE, pod.namespace),
                     (CONTAINER_NAME, container_name)),
            pod.owner, pod.labels), waits

    def peer(self, address: str) -> tuple[Attributes, tuple[Token, ...]]:
        """The pod whose IP `address` is, and what the answer waits on: an IP
        may become a pod's, or pass from a pod to another, at any time."""
        if self.pods is None or self.pods.config.peers == "off":
            return (), ()
        peer = self.pods.peer(address)
        return (peer.attributes() if peer is not None else ()), ((PEER, address),)

    # --- changes --------------------------------------------------------------------
    def pod_changed(self, uid: str | None) -> None:
        self._note(POD, uid)

    def peer_changed(self, address: str | None) -> None:
        self._note(PEER, address)

    def _note(self, kind: str, value: str | None) -> None:
        with self._lock:
            if value is None or len(self._tokens) >= MAX_PENDING_CHANGES:
                self._everything.add(kind)
            else:
                self._tokens.add((kind, value))

    def take_changes(self) -> Changes:
        with self._lock:
            if not self._tokens and not self._everything:
                return Changes()
            changes = Changes(frozenset(self._tokens), frozenset(self._everything))
            self._tokens.clear()
            self._everything.clear()
        return changes

    def close(self) -> None:
        if self.pods is not None:
            self.pods.stop()
        self._close_recorder()
        if self.cgroups is not None:
            self.cgroups.close()

    def _close_recorder(self) -> None:
        if self.recorder is not None:
            assert self.cgroups is not None
            self.cgroups.paths.recorded = None
            self.recorder.close()
            self.recorder = None


def _present(*pairs: tuple[str, AttrValue | None]) -> Attributes:
    return tuple((name, value) for name, value in pairs if value is not None)


def start_attribution(*, pod_labels: bool = False, peers: str = "cluster",
                      kubeconfig: Path | None = None, record_new_cgroups: bool = True,
                      environ: Mapping[str, str] = os.environ) -> Attribution:
    """Attribution for a run: cgroup paths when this host has a cgroup v2
    hierarchy (with `record_new_cgroups`, the recorder of new cgroups' paths
    loaded, for attach() to start), plus a pod cache (started, its first list
    in the background) when NODE_NAME and Kubernetes credentials are there.
    Says in the log, once, which is active; never waits for the API server."""
    try:
        cgroups = CgroupResolver()
    except NoCgroup2Mount as error:
        log.warning("attribution: none: %s", error)
        return Attribution()
    recorder = start_recorder(cgroups.paths.mount) if record_new_cgroups else None
    attribution = Attribution(cgroups, recorder=recorder)
    node = environ.get("NODE_NAME") or None
    if node is None:
        log.info("attribution: cgroup only (container.id, container.runtime.name, "
                 "k8s.pod.uid from cgroup paths under %s); set NODE_NAME, with Kubernetes "
                 "credentials, to add pod names from the API", cgroups.paths.mount)
        return attribution
    from ig_metrics.k8s.pods import PodCache, PodCacheConfig

    pods = PodCache(PodCacheConfig(node_name=node, kubeconfig=kubeconfig,
                                   include_labels=pod_labels, peers=peers),
                    on_pod_change=attribution.pod_changed,
                    on_peer_change=attribution.peer_changed)
    try:
        pods.start()
    except KubernetesUnavailable as error:
        log.warning("attribution: cgroup only (from cgroup paths under %s); no Kubernetes "
                    "API: %s", cgroups.paths.mount, error)
        return attribution
    except BaseException:
        attribution.close()             # the recorder is loaded: leave nothing behind
        raise
    attribution.pods = pods
    log.info("attribution: cgroup + Kubernetes API (pods of node %s%s, peers: %s; "
             "names appear once the first list arrives)", node,
             ", with their labels" if pod_labels else "", pods.config.peers)
    return attribution
