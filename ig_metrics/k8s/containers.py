"""How container runtimes and kubelet name cgroups, as two tables of rules (one
entry per runtime and cgroup driver), and what a cgroup path says about the
container and pod its processes belong to."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ig_metrics.model.semconv import CONTAINER_ID, CONTAINER_RUNTIME, POD_UID
from ig_metrics.model.snapshot import Attributes

_ID = r"(?P<id>[0-9a-f]{64})"                 # every runtime here names a container by 64 hex
SHORTEST_CONTAINER_NAME = 64                  # so shorter names match no container rule


@dataclass(frozen=True, slots=True)
class ContainerRule:
    """One runtime's name for a container's cgroup under one cgroup driver."""

    runtime: str                 # the container.runtime.name value
    driver: str                  # "systemd" or "cgroupfs"
    name: re.Pattern[str]        # matches the cgroup's own directory name; group `id`
    parent: re.Pattern[str] | None   # when set, the parent directory must match it
    example: str                 # a path as the runtime makes it (docs and tests)
    in_pod: bool = False         # only below a kubelet pod cgroup


@dataclass(frozen=True, slots=True)
class PodRule:
    """kubelet's name for a pod's cgroup under one cgroup driver."""

    driver: str
    name: re.Pattern[str]        # group `uid`
    parent: re.Pattern[str] | None
    underscores_are_dashes: bool  # systemd slice names cannot hold '-' inside a unit name part
    example: str


def _rule(runtime: str, driver: str, name: str, parent: str | None, example: str,
          in_pod: bool = False) -> ContainerRule:
    return ContainerRule(runtime, driver, re.compile(name),
                         re.compile(parent) if parent else None, example, in_pod)


CONTAINER_RULES: tuple[ContainerRule, ...] = (
    _rule("containerd", "systemd", rf"cri-containerd-{_ID}\.scope", None,
          "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/"
          "cri-containerd-<id>.scope"),
    # A bare id directly under kubelet's pod directory. cri-dockerd names Docker
    # containers the same way: the pod cache's containerID (docker://) tells them apart.
    _rule("containerd", "cgroupfs", _ID, r"pod[0-9a-f-]+",
          "/kubepods/burstable/pod<uid>/<id>", in_pod=True),
    _rule("cri-o", "systemd", rf"crio-{_ID}\.scope", None,
          "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/"
          "crio-<id>.scope"),
    _rule("cri-o", "cgroupfs", rf"crio-{_ID}", None,
          "/kubepods/besteffort/pod<uid>/crio-<id>"),
    _rule("docker", "systemd", rf"docker-{_ID}\.scope", None,
          "/system.slice/docker-<id>.scope"),
    _rule("docker", "cgroupfs", _ID, r"docker", "/docker/<id>"),
    _rule("podman", "systemd", rf"libpod-{_ID}\.scope", None,
          "/machine.slice/libpod-<id>.scope"),
    _rule("podman", "cgroupfs", rf"libpod-{_ID}", r"libpod_parent",
          "/libpod_parent/libpod-<id>"),
)
# Not containers, on purpose: conmon's own scopes (crio-conmon-<id>.scope,
# libpod-conmon-<id>.scope) hold the monitor process, not the container's.

POD_RULES: tuple[PodRule, ...] = (
    # kubepods-pod<uid>.slice (Guaranteed), kubepods-burstable-pod<uid>.slice,
    # kubepods-besteffort-pod<uid>.slice; kind and other nested kubelets run with
    # a cgroup root that prefixes the names (kubelet-kubepods-…-pod<uid>.slice).
    PodRule("systemd",
            re.compile(r"(?:.+-)?kubepods(?:-burstable|-besteffort)?"
                       r"-pod(?P<uid>[0-9a-f_]+)\.slice"),
            None, True,
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice"),
    PodRule("cgroupfs", re.compile(r"pod(?P<uid>[0-9a-f-]+)"),
            re.compile(r"kubepods|burstable|besteffort"), False,
            "/kubepods/burstable/pod<uid>"),
)


@dataclass(frozen=True, slots=True)
class CgroupIdentity:
    """What a cgroup path says: the container (id, runtime) and pod (uid) of its
    processes, each None when the path does not say."""

    container_id: str | None = None
    runtime: str | None = None
    pod_uid: str | None = None

    def attributes(self) -> Attributes:
        pairs = ((CONTAINER_ID, self.container_id), (CONTAINER_RUNTIME, self.runtime),
                 (POD_UID, self.pod_uid))
        return tuple((name, value) for name, value in pairs if value is not None)


NO_IDENTITY = CgroupIdentity()


def identify(path: str) -> CgroupIdentity:
    """The container and pod of a cgroup path ("/kubepods.slice/…" as in
    /proc/PID/cgroup, or a path under the cgroup mount).

    The deepest match wins, so a container nested in another (kind nodes,
    Docker in Docker) is the inner one; a pod resets the container above it."""
    container_id = runtime = pod_uid = None
    parent = ""
    for name in path.split("/"):
        if name in ("", ".", ".."):       # ".." leads paths seen from a cgroup namespace
            continue
        uid = _pod_uid(parent, name)
        if uid is not None:
            pod_uid, container_id, runtime = uid, None, None
        else:
            match = _container(parent, name, pod_uid is not None)
            if match is not None:
                container_id, runtime = match
        parent = name
    if container_id is None and pod_uid is None:
        return NO_IDENTITY
    return CgroupIdentity(container_id, runtime, pod_uid)


def _pod_uid(parent: str, name: str) -> str | None:
    if "pod" not in name:
        return None
    for rule in POD_RULES:
        match = rule.name.fullmatch(name)
        if match and (rule.parent is None or rule.parent.fullmatch(parent)):
            uid = match["uid"]
            return uid.replace("_", "-") if rule.underscores_are_dashes else uid
    return None


def _container(parent: str, name: str, in_pod: bool) -> tuple[str, str] | None:
    if len(name) < SHORTEST_CONTAINER_NAME:
        return None
    for rule in CONTAINER_RULES:
        if rule.in_pod and not in_pod:
            continue
        match = rule.name.fullmatch(name)
        if match and (rule.parent is None or rule.parent.fullmatch(parent)):
            return match["id"], rule.runtime
    return None
