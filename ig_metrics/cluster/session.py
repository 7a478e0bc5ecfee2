"""The lifecycle of the cluster commands, without a terminal: `run --cluster`
(check the user's rights, create the run's objects written for the server's
version, follow its nodes, delete exactly what it created) and `top --cluster`
(find a standing deployment, follow its nodes, change nothing). What is shown
is the caller's: a Display gets every reading, `say` every message."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from ig_metrics.cluster.api import (
    READ_ACCESS,
    RUN_ACCESS,
    TOP_ACCESS,
    Access,
    Cluster,
    ClusterError,
    wait_gone,
)
from ig_metrics.cluster.objects import RunPlan, plan_run
from ig_metrics.cluster.watch import ClusterReading, ClusterWatch
from ig_metrics.deploy.manifests import (
    DEFAULT_KUBE_VERSION,
    HEALTH_PORT,
    OLDEST_KUBE_VERSION,
    RUN_LABEL,
    DeployOptions,
)

READ_INTERVAL = 1.0          # seconds between two readings of the nodes
READ_BUDGET = 0.8            # of which a refresh waits at most this for its reads
CLEANUP_TIMEOUT = 60.0       # seconds to wait for the run's pods to end
HEALTH_PORT_NAME = "health"


class Display(Protocol):
    def update(self, reading: ClusterReading) -> None: ...


class Refused(ClusterError):
    """The user lacks rights the command needs (exit 1, every missing one named)."""

    def __init__(self, missing: Sequence[Access], namespace: str, cluster: Cluster) -> None:
        super().__init__(
            "forbidden: " + "; ".join(f"you may not {access.label} in namespace {namespace}"
                                      for access in missing)
            + f" ({cluster.where}). 'ig-metrics doctor --cluster' lists every right needed "
              "(docs/kubernetes.md has a Role that grants them).")


@dataclass(frozen=True, slots=True)
class Standing:
    """A deployment `deploy --apply` made, as `top --cluster` reads it."""

    name: str
    gadgets: tuple[str, ...]
    selector: str
    port: int                    # the agents' health port, which serves /summary


def manifests_version(cluster: Cluster) -> str:
    """The Kubernetes version to write manifests for: the server's, within
    what deploy writes for (an older server gets the oldest, which it may refuse
    for other reasons than these fields; a server that says none, the default)."""
    if not cluster.minor_version:
        return DEFAULT_KUBE_VERSION
    major, minor = (int(part) for part in cluster.minor_version.split("."))
    return cluster.minor_version if (major, minor) >= OLDEST_KUBE_VERSION \
        else ".".join(map(str, OLDEST_KUBE_VERSION))


def settle_memory() -> None:
    """What the command has made so far (the kubernetes client, the first
    summaries) lives as long as it does: frozen, Python's full collections no
    longer walk it. Each refresh at 1,000 nodes makes ~100k short-lived
    objects, and the full collections they start cost a third of its CPU
    (docs/performance.md)."""
    gc.collect()
    gc.freeze()


def follow(watch: ClusterWatch, stop: threading.Event, display: Display, *,
           duration: float | None) -> bool:
    """Read the nodes every READ_INTERVAL and show each reading, until `stop`
    or `duration`: whether any node was ever read."""
    deadline = None if duration is None else time.monotonic() + duration
    ever_read = False
    while not stop.is_set():
        began = time.monotonic()
        budget = READ_BUDGET if deadline is None else max(0.0, min(READ_BUDGET,
                                                                   deadline - began))
        reading = watch.read(budget)
        if reading.ready() and not ever_read:
            settle_memory()
        ever_read = ever_read or bool(reading.ready())
        display.update(reading)
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        wait = READ_INTERVAL - (now - began)
        stop.wait(max(0.0, wait if deadline is None else min(wait, deadline - now)))
    return ever_read


def run_on_cluster(cluster: Cluster, options: DeployOptions, directory: Path,
                   stop: threading.Event, *, sort: str | None, top: int,
                   display: Callable[[RunPlan], Display], duration: float | None,
                   say: Callable[[str], None]) -> bool:
    """Create the run's objects (for the server's version), follow its nodes,
    delete what it created: whether any node was read. ClusterError for what
    the cluster refused; DeployInputError (from planning) for bad profiles."""
    missing = cluster.missing(RUN_ACCESS, options.namespace)
    if missing:
        raise Refused(missing, options.namespace, cluster)
    plan = plan_run(replace(options, kube_version=manifests_version(cluster)), directory)
    for note in plan.profiles.notes:
        say(f"note: {note}")
    namespace = options.namespace
    say(f"run {plan.options.run_id}: DaemonSet {plan.options.workload} in namespace "
        f"{namespace} ({cluster.where}, Kubernetes {cluster.version}; manifests for "
        f"{plan.options.kube_version})")
    created: list[tuple[str, str]] = []
    try:
        for manifest in plan.manifests:
            if stop.is_set():
                return False
            cluster.create(manifest)
            created.append((manifest["kind"], manifest["metadata"]["name"]))
        with ClusterWatch(cluster, namespace, plan.selector, HEALTH_PORT, sort=sort,
                          top=top) as watch:
            return follow(watch, stop, display(plan), duration=duration)
    finally:
        if created:
            _delete(cluster, created, namespace, plan.selector, say)


def _delete(cluster: Cluster, created: list[tuple[str, str]], namespace: str, selector: str,
            say: Callable[[str], None]) -> None:
    """Delete what this run created (nothing else), newest first, then wait
    for its pods to end. A failure here is reported with what is left, for
    the user to delete by the run's label."""
    try:
        for kind, name in reversed(created):
            cluster.delete(kind, name, namespace)
        left = wait_gone(cluster, namespace, selector, CLEANUP_TIMEOUT)
    except ClusterError as error:
        say(f"error: deleting this run's objects: {error}\n  delete them with: "
            f"kubectl delete daemonsets,configmaps,serviceaccounts,pods -n {namespace} "
            f"-l {selector}")
        return
    if left:
        say(f"warning: pods still terminating after {CLEANUP_TIMEOUT:.0f}s: "
            f"{', '.join(left)} (their DaemonSet is deleted; Kubernetes removes them)")
    else:
        say(f"deleted: {', '.join(f'{kind} {name}' for kind, name in created)}; "
            "every pod of the run has ended")


def find_standing(cluster: Cluster, namespace: str, gadgets: Sequence[str]) -> Standing:
    """The deployment `deploy --apply` made (runs of `run --cluster` are not
    one) running `gadgets` (any, when empty); ClusterError when there is none
    or several to choose from."""
    missing = cluster.missing((*TOP_ACCESS, *READ_ACCESS), namespace)
    if missing:
        raise Refused(missing, namespace, cluster)
    found = []
    for daemon_set in cluster.daemon_sets(namespace,
                                          f"app.kubernetes.io/name=ig-metrics,!{RUN_LABEL}"):
        template = daemon_set["spec"]["template"]
        component = template["metadata"]["labels"].get("app.kubernetes.io/component", "")
        runs = tuple(component.split("-")) if component else ()
        if not gadgets or set(gadgets) <= set(runs):
            found.append((daemon_set, runs))
    if not found:
        what = f"running {', '.join(gadgets)} " if gadgets else ""
        raise ClusterError(f"no ig-metrics DaemonSet {what}in namespace {namespace} "
                           f"({cluster.where}): make one with 'ig-metrics deploy ... --apply', "
                           "or use 'ig-metrics run --cluster'")
    if len(found) > 1:
        raise ClusterError(f"several ig-metrics DaemonSets in namespace {namespace}: "
                           f"{', '.join(d['metadata']['name'] for d, _ in found)}; choose "
                           "one with --gadget")
    daemon_set, runs = found[0]
    selector = ",".join(f"{key}={value}" for key, value in
                        daemon_set["spec"]["selector"]["matchLabels"].items())
    return Standing(daemon_set["metadata"]["name"], runs, selector,
                    health_port(daemon_set))


def health_port(daemon_set: dict) -> int:
    """The port of the agents' health endpoint: the container port named
    `health` (deploy's manifests name it), else deploy's default."""
    for container in daemon_set["spec"]["template"]["spec"].get("containers", []):
        for port in container.get("ports", []):
            if port.get("name") == HEALTH_PORT_NAME:
                return int(port["containerPort"])
    return HEALTH_PORT
