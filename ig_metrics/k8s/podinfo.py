"""What a pod object (as the API server sends it, JSON) says about its pod:
names, containers, owner workload, IPs, as OpenTelemetry attributes."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ig_metrics.model.semconv import (
    CONTAINER_NAME,
    NAMESPACE,
    NODE_NAME,
    PEER_NAMESPACE,
    PEER_POD_NAME,
    POD_LABEL_PREFIX,
    POD_NAME,
)
from ig_metrics.model.snapshot import Attributes

POD_TEMPLATE_HASH = "pod-template-hash"     # label the Deployment controller puts on its pods
# A CronJob names its Jobs <cronjob>-<scheduled time in minutes since the epoch>.
CRONJOB_JOB_NAME = re.compile(r"(?P<cronjob>.+)-\d{8,}")
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})   # their IPs may already be another pod's
# containerStatuses[].containerID is <runtime>://<id>; the names as container.runtime.name.
RUNTIME_SCHEMES = {"containerd": "containerd", "cri-o": "cri-o", "docker": "docker"}


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    name: str
    runtime: str | None


@dataclass(frozen=True, slots=True, eq=False)
class PodInfo:
    """One pod of this node, with its attributes built once (lookups are hot)."""

    uid: str
    name: str
    namespace: str
    node_name: str
    phase: str
    ips: tuple[str, ...]
    host_network: bool
    owner: Attributes                     # e.g. k8s.replicaset.name and k8s.deployment.name
    labels: Attributes                    # k8s.pod.label.<key>, only when asked for
    containers: Mapping[str, ContainerInfo]   # container id -> name and runtime
    base_attributes: Attributes = field(repr=False)
    _by_container: Mapping[str, Attributes] = field(repr=False)

    def attributes(self, container_id: str | None = None) -> Attributes:
        """The pod's attributes, with k8s.container.name when `container_id` is
        one of its containers."""
        if container_id is not None:
            with_container = self._by_container.get(container_id)
            if with_container is not None:
                return with_container
        return self.base_attributes


@dataclass(frozen=True, slots=True)
class PeerPod:
    """The pod an IP belongs to, for a connection's peer."""

    name: str
    namespace: str
    uid: str

    def attributes(self) -> Attributes:
        return ((PEER_POD_NAME, self.name), (PEER_NAMESPACE, self.namespace))


def pod_info(pod: Mapping[str, Any], *, include_labels: bool = False) -> PodInfo:
    """A PodInfo from a pod object as JSON (camelCase keys, as the API sends it)."""
    metadata, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    name, namespace = metadata["name"], metadata.get("namespace", "default")
    node_name = spec.get("nodeName", "")
    owner = owner_attributes(metadata)
    labels: Attributes = ()
    if include_labels:
        labels = tuple((POD_LABEL_PREFIX + key, value)
                       for key, value in sorted((metadata.get("labels") or {}).items()))
    base = ((POD_NAME, name), (NAMESPACE, namespace),
            *(((NODE_NAME, node_name),) if node_name else ()), *owner, *labels)
    containers = _containers(status)
    by_container = {container_id: (*base[:2], (CONTAINER_NAME, info.name), *base[2:])
                    for container_id, info in containers.items()}
    return PodInfo(
        uid=metadata["uid"], name=name, namespace=namespace, node_name=node_name,
        phase=status.get("phase", ""), ips=pod_ips(status),
        host_network=bool(spec.get("hostNetwork", False)), owner=owner, labels=labels,
        containers=MappingProxyType(containers), base_attributes=base,
        _by_container=MappingProxyType(by_container))


def pod_ips(status: Mapping[str, Any]) -> tuple[str, ...]:
    ips = [entry["ip"] for entry in status.get("podIPs") or () if entry.get("ip")]
    if status.get("podIP") and status["podIP"] not in ips:
        ips.insert(0, status["podIP"])
    return tuple(ips)


def peer_pod(pod: Mapping[str, Any]) -> tuple[PeerPod, tuple[str, ...]] | None:
    """The peer entry of a pod and the IPs that are its own, or None when none
    is: a host-network pod shares its node's IP, and a finished pod's IP may
    already belong to a new pod."""
    spec, status = pod.get("spec", {}), pod.get("status", {})
    if spec.get("hostNetwork") or status.get("phase") in TERMINAL_PHASES:
        return None
    ips = pod_ips(status)
    if not ips:
        return None
    metadata = pod["metadata"]
    return PeerPod(metadata["name"], metadata.get("namespace", "default"), metadata["uid"]), ips


def _containers(status: Mapping[str, Any]) -> dict[str, ContainerInfo]:
    containers: dict[str, ContainerInfo] = {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for container in status.get(key) or ():
            scheme, separator, container_id = (container.get("containerID") or "").partition("://")
            if separator and container_id:
                containers[container_id] = ContainerInfo(container["name"],
                                                         RUNTIME_SCHEMES.get(scheme))
    return containers


# --- owners: one entry per controller kind ---------------------------------------------

def _replicaset(name: str, metadata: Mapping[str, Any]) -> Attributes:
    # The Deployment controller names a ReplicaSet <deployment>-<pod-template-hash>
    # and labels its pods with that hash; a ReplicaSet without it has no Deployment.
    template_hash = (metadata.get("labels") or {}).get(POD_TEMPLATE_HASH)
    if template_hash and name.endswith("-" + template_hash):
        return (("k8s.replicaset.name", name),
                ("k8s.deployment.name", name[:-len(template_hash) - 1]))
    return (("k8s.replicaset.name", name),)


def _job(name: str, metadata: Mapping[str, Any]) -> Attributes:
    match = CRONJOB_JOB_NAME.fullmatch(name)
    if match:
        return (("k8s.job.name", name), ("k8s.cronjob.name", match["cronjob"]))
    return (("k8s.job.name", name),)


def _named(attribute: str) -> Callable[[str, Mapping[str, Any]], Attributes]:
    return lambda name, metadata: ((attribute, name),)


OWNER_KINDS: dict[str, Callable[[str, Mapping[str, Any]], Attributes]] = {
    "ReplicaSet": _replicaset,
    "DaemonSet": _named("k8s.daemonset.name"),
    "StatefulSet": _named("k8s.statefulset.name"),
    "Job": _job,
    "ReplicationController": _named("k8s.replicationcontroller.name"),
}


def owner_attributes(metadata: Mapping[str, Any]) -> Attributes:
    """The workload that runs the pod: its controller owner reference, by kind."""
    references = metadata.get("ownerReferences") or ()
    controller = next((ref for ref in references if ref.get("controller")), None)
    if controller is None:
        return ()
    describe = OWNER_KINDS.get(controller.get("kind", ""))
    return describe(controller["name"], metadata) if describe else ()
