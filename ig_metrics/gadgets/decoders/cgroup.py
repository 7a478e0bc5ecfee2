"""Decoder for a cgroup id (bpf_get_current_cgroup_id()): the container and pod
of the process, as several attributes (docs/kubernetes.md); none for a process
outside containers."""

from __future__ import annotations

from ig_metrics.model.semconv import (
    CONTAINER_ID,
    CONTAINER_NAME,
    CONTAINER_RUNTIME,
    NAMESPACE,
    OWNER_ATTRIBUTES,
    POD_LABEL_PREFIX,
    POD_NAME,
    POD_UID,
)
from ig_metrics.model.snapshot import Attributes

ALL_PARTS = "all"
# What each `part` of the decoder may yield, in this order; "all" (the
# default) yields every part. A name ending in "*" stands for a prefix.
_PARTS: dict[str, tuple[str, ...]] = {
    "container": (CONTAINER_ID, CONTAINER_RUNTIME),
    "pod": (POD_UID, POD_NAME, NAMESPACE, CONTAINER_NAME),
    "owner": OWNER_ATTRIBUTES,
    "labels": (POD_LABEL_PREFIX + "*",),
}
CGROUP_PARTS = {ALL_PARTS: tuple(name for names in _PARTS.values() for name in names),
                **_PARTS}


def decode_cgroup(value, fields, spec, ctx) -> Attributes:
    """Path-derived attributes (container.id, container.runtime.name,
    k8s.pod.uid) and, with the Kubernetes API, the pod's names and owner."""
    return ctx.container_attributes(int(value), spec.part or ALL_PARTS)

