"""Looking values up in a Snapshot by metric name and attribute subset."""

from __future__ import annotations

from ig_metrics.config.model import AttributeName, AttributeSelection
from ig_metrics.model.snapshot import HistogramValue, Snapshot

# The selection of a profile with `attributes: {opt_in: [process.pid]}`: for
# samplers of tests that tell processes apart by pid (series leave it out by
# default, and a lookup by a pid no series has would find 0).
PIDS = AttributeSelection(opt_in=(AttributeName("process.pid"),))


def points(snapshot: Snapshot, metric: str, **attributes) -> list:
    """Points of `metric` whose attributes include every given one (dots in
    attribute names are written as double underscores: process__pid=...)."""
    wanted = {name.replace("__", "."): value for name, value in attributes.items()}
    data = snapshot.metric(metric)
    if data is None:
        return []
    return [point for point in data.points
            if all(dict(point.attributes).get(name) == value for name, value in wanted.items())]


def total(snapshot: Snapshot, metric: str, **attributes) -> int:
    """Sum of the matching points' values (histograms: their counts)."""
    found = points(snapshot, metric, **attributes)
    return sum(p.value.count if isinstance(p.value, HistogramValue) else p.value for p in found)


# What a gadget's `container` attribute (decoder cgroup) may add to a series,
# in the order `gadgets describe` lists them (docs/kubernetes.md).
CONTAINER_ATTRIBUTES = [
    "container.id", "container.runtime.name", "k8s.pod.uid", "k8s.pod.name",
    "k8s.namespace.name", "k8s.container.name", "k8s.replicaset.name", "k8s.deployment.name",
    "k8s.daemonset.name", "k8s.statefulset.name", "k8s.job.name", "k8s.cronjob.name",
    "k8s.replicationcontroller.name", "k8s.pod.label.*",
]
