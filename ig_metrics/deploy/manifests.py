"""The Kubernetes objects `ig-metrics deploy` writes: a namespace, a service
account allowed to read pods, the profiles as a ConfigMap, and a DaemonSet that
runs `ig-metrics run --no-tui` on every node with the least privilege eBPF
tracing needs (docs/kubernetes.md says why each privilege is there)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import KW_ONLY, dataclass
from typing import Any

import yaml

from ig_metrics import __version__
from ig_metrics.deploy.podprofiles import POD_PROFILES_DIR, PodProfiles, ScrapeEndpoint
from ig_metrics.deploy.privileges import BASE_CAPABILITIES, LEGACY_CAPABILITY, PodNeeds
from ig_metrics.deploy.seccomp import LOCALHOST_PROFILE

DEFAULT_NAMESPACE = "ig-metrics"
# What the printed manifests name without --image: a placeholder to replace
# (no registry publishes ig-metrics; --apply refuses to go without --image).
PLACEHOLDER_IMAGE = f"ig-metrics:{__version__}"
NAME = "ig-metrics"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# The label of every object a `run --cluster` creates: its value is the run's id.
RUN_LABEL = "ig-metrics/run"
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")     # what the API accepts

# The pod's environment: these come from the downward API, the rest from --env.
DOWNWARD_ENV = {"NODE_NAME": "spec.nodeName", "HOST_IP": "status.hostIP"}
# What stands for the downward values when the profiles are checked before deploying.
DOWNWARD_PLACEHOLDERS = {"NODE_NAME": "node-1", "HOST_IP": "192.0.2.1"}
FIXED_ENV = {"PYTHONUNBUFFERED": "1"}             # log lines reach `kubectl logs` at once
# Every pod has these (the service account's API server address).
CLUSTER_ENV_PLACEHOLDERS = {"KUBERNETES_SERVICE_HOST": "10.96.0.1",
                            "KUBERNETES_SERVICE_PORT": "443"}

# Where the node's cgroup v2 hierarchy is: /sys/fs/cgroup on a pure v2 node (every
# current distribution; kubelet 1.35 refuses cgroup v1 by default), and
# /sys/fs/cgroup/unified on a v1/v2 hybrid node (deploy --cgroup2-path).
DEFAULT_CGROUP2_PATH = "/sys/fs/cgroup"


def host_mounts(cgroup2_path: str = DEFAULT_CGROUP2_PATH) -> tuple[tuple[str, str, str], ...]:
    """hostPath volumes: (name, host path = mount path, hostPath type). Read-only all."""
    return (
        # bcc reads tracepoint ids under tracefs; debugfs is not needed once tracefs is there.
        ("tracefs", "/sys/kernel/tracing", "Directory"),
        # cgroup ids to container and pod; --cgroup filters. The node's cgroup2
        # hierarchy and nothing else: not the v1 controllers mounted beside it on
        # a hybrid node, which a non-recursive read-only mount leaves writable.
        ("cgroup", cgroup2_path, "Directory"),
        # bcc compiles the gadget against the node's kernel headers: /lib/modules/$(uname
        # -r)/build links into /usr/src. Nodes without them may provide kheaders instead.
        ("modules", "/lib/modules", "Directory"),
        ("usr-src", "/usr/src", ""),
    )


# Bidirectional would need a privileged container; HostToContainer shows the pod
# a tracefs the node mounts after boot. The others propagate nothing: a
# recursive read-only mount must not (the API refuses it).
PROPAGATED = frozenset({"tracefs"})
# Kubernetes versions: recursiveReadOnly exists from 1.30 (alpha there, behind the
# RecursiveReadOnlyMounts gate; beta and on from 1.31, GA in 1.33). IfPossible:
# recursive where the runtime can (containerd 2.0, CRI-O 1.30, runc 1.1 on Linux
# 5.12), plain read-only elsewhere; the mounts hold no submount either way.
RECURSIVE_READ_ONLY_SINCE = (1, 30)
OLDEST_KUBE_VERSION = (1, 25)            # Pod Security admission labels, GA in 1.25
DEFAULT_KUBE_VERSION = "1.31"
KUBE_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?")
# The agent's health endpoint (run --health-listen): the probes' port.
HEALTH_PORT = 9465
SECCOMP_CHOICES = ("runtime-default", "localhost")

RESOURCES = {
    # Measured: ~190 MiB resident at peak while bcc compiles the tcp gadget, far
    # less afterwards; one CPU lets the compile finish in about a second.
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
# Ready once attached and read (~1 s of compiling here): asked every 5 s. Alive
# unless the run stopped or the sampler stalled: a minute of failures restarts.
READINESS_TIMING = {"periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 3}
LIVENESS_TIMING = {"initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 5,
                   "failureThreshold": 6}


@dataclass(frozen=True)
class DeployOptions:
    gadget: str                    # the gadgets every pod runs: "tcp" or "tcp,dns,blockio"
    profile: str
    _: KW_ONLY                     # the rest by name: a positional () or False says nothing
    namespace: str = DEFAULT_NAMESPACE
    image: str = PLACEHOLDER_IMAGE
    env: tuple[tuple[str, str], ...] = ()          # --env NAME=VALUE, in order
    sys_admin: bool = False
    needs: PodNeeds = PodNeeds()                   # what the gadget's hook kinds add
    kube_version: str = DEFAULT_KUBE_VERSION
    cgroup2_path: str = DEFAULT_CGROUP2_PATH
    seccomp: str = "runtime-default"
    # `run --cluster` only: the run's id (in names and the RUN_LABEL), the nodes
    # it runs on (--node), and a node selector (--node-selector KEY=VALUE).
    run_id: str = ""
    nodes: tuple[str, ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _ = self.kube_version_tuple                # ValueError for a malformed one
        if not self.cgroup2_path.startswith("/"):
            raise ValueError(f"--cgroup2-path: '{self.cgroup2_path}' is not an absolute path")
        if self.seccomp not in SECCOMP_CHOICES:
            raise ValueError(f"--seccomp: '{self.seccomp}' is not one of "
                             f"{', '.join(SECCOMP_CHOICES)}")
        if not DNS_LABEL.fullmatch(self.namespace):
            raise ValueError(f"--namespace: '{self.namespace}' is not a valid namespace name "
                             "(lowercase letters, digits and '-', at most 63)")
        for name, _ in self.env:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"--env: '{name}' is not a valid environment variable name")
            if name in DOWNWARD_ENV or name in FIXED_ENV:
                raise ValueError(f"--env: {name} is set by the DaemonSet itself")

    @property
    def kube_version_tuple(self) -> tuple[int, int]:
        match = KUBE_VERSION.fullmatch(self.kube_version)
        if match is None:
            raise ValueError(f"--kube-version: '{self.kube_version}' is not MAJOR.MINOR, "
                             "e.g. 1.31")
        version = (int(match[1]), int(match[2]))
        if version < OLDEST_KUBE_VERSION:
            raise ValueError(f"--kube-version: {self.kube_version} is older than "
                             f"{'.'.join(map(str, OLDEST_KUBE_VERSION))}, the oldest "
                             "deploy writes for")
        return version

    @property
    def recursive_read_only(self) -> bool:
        return self.kube_version_tuple >= RECURSIVE_READ_ONLY_SINCE

    @property
    def workload(self) -> str:
        return f"{NAME}-{self.component}-{self.run_id}" if self.run_id \
            else f"{NAME}-{self.component}"

    @property
    def component(self) -> str:
        """The gadgets as a name part (objects, labels, the container): tcp-dns."""
        return self.gadget.replace(",", "-")

    @property
    def service_account(self) -> str:
        """A run's own account, so that deleting it leaves a deployment's alone."""
        return self.workload if self.run_id else NAME

    @property
    def capabilities(self) -> tuple[str, ...]:
        legacy = (LEGACY_CAPABILITY,) if self.sys_admin else ()
        return (*BASE_CAPABILITIES, *self.needs.capabilities, *legacy)


def pod_environment(options: DeployOptions) -> dict[str, str]:
    """The environment `ig-metrics run` will have in the pod, downward API
    values replaced by placeholders: what the profiles are checked against."""
    return {**CLUSTER_ENV_PLACEHOLDERS, **DOWNWARD_PLACEHOLDERS, **FIXED_ENV, **dict(options.env)}


def run_command(options: DeployOptions) -> list[str]:
    return ["ig-metrics", "run", "--gadget", options.gadget, "--profile", options.profile,
            "--profiles-dir", POD_PROFILES_DIR, "--no-tui",
            # The pod IP: where the kubelet's probes come from.
            "--health-listen", f"0.0.0.0:{HEALTH_PORT}"]


def build_manifests(options: DeployOptions, profiles: PodProfiles) -> list[dict[str, Any]]:
    """Every object, in the order `kubectl apply` should create them."""
    return [namespace(options), service_account(options), cluster_role(),
            cluster_role_binding(options), config_map(options, profiles),
            daemon_set(options, profiles)]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the profiles) as literal blocks, readable as written."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)


def render(manifests: list[dict[str, Any]]) -> str:
    return yaml.dump_all(manifests, Dumper=_Dumper, sort_keys=False, explicit_start=True,
                         width=100)


def _labels(options: DeployOptions | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": NAME}
    if options is not None:
        labels["app.kubernetes.io/instance"] = options.workload
        if options.run_id:
            labels[RUN_LABEL] = options.run_id
    return labels


def _metadata(name: str, options: DeployOptions | None, namespaced: bool = True,
              **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespaced and options is not None:
        metadata["namespace"] = options.namespace
    metadata["labels"] = {**_labels(options), "app.kubernetes.io/version": __version__}
    metadata.update(extra)
    return metadata


def namespace(options: DeployOptions) -> dict[str, Any]:
    # Pod Security's baseline level forbids hostPID, hostPath volumes and the
    # capabilities eBPF needs: this namespace must allow privileged pods.
    metadata = _metadata(options.namespace, None, namespaced=False)
    metadata["labels"].update({"pod-security.kubernetes.io/enforce": "privileged",
                               "pod-security.kubernetes.io/warn": "privileged",
                               "pod-security.kubernetes.io/audit": "privileged"})
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def service_account(options: DeployOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _metadata(options.service_account, options)}


def cluster_role() -> dict[str, Any]:
    # Pod names, owners and IPs of the node and of peers: reading pods is all.
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": _metadata(NAME, None, namespaced=False),
            "rules": [{"apiGroups": [""], "resources": ["pods"],
                       "verbs": ["get", "list", "watch"]}]}


def cluster_role_binding(options: DeployOptions) -> dict[str, Any]:
    # One binding per namespace deployed to, so that two installs do not take
    # each other's rights away.
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": _metadata(f"{NAME}:{options.namespace}", None, namespaced=False),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME,
                          "namespace": options.namespace}]}


def config_map(options: DeployOptions, profiles: PodProfiles) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(f"{options.workload}-profiles", options),
            "data": dict(sorted(profiles.files.items()))}


def profiles_digest(profiles: PodProfiles) -> str:
    digest = hashlib.sha256()
    for name, text in sorted(profiles.files.items()):
        digest.update(f"{name}\0{text}\0".encode())
    return digest.hexdigest()


def daemon_set(options: DeployOptions, profiles: PodProfiles) -> dict[str, Any]:
    # A changed ConfigMap changes this annotation, so the DaemonSet rolls.
    annotations = {"ig-metrics/profiles-sha256": profiles_digest(profiles)}
    if profiles.scrape:
        annotations.update(scrape_annotations(profiles.scrape[0]))
    pod_spec = {
        "serviceAccountName": options.service_account,
        # Process ids from the kernel are the host's; /proc must show the host's
        # processes for their names, sockets and cgroups to be read.
        "hostPID": True,
        **_host_network(options.needs),
        "nodeSelector": {"kubernetes.io/os": "linux", **dict(options.node_selector)},
        **_node_affinity(options.nodes),
        "tolerations": [{"operator": "Exists"}],       # every node, tainted or not
        "terminationGracePeriodSeconds": 30,
        "containers": [container(options, profiles)],
        "volumes": [
            {"name": "profiles", "configMap": {"name": f"{options.workload}-profiles"}},
            {"name": "tmp", "emptyDir": {}},
            *({"name": name, "hostPath": {"path": host, "type": kind}}
              for name, host, kind in host_mounts(options.cgroup2_path)),
        ],
    }
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": _metadata(options.workload, options),
        "spec": {
            "selector": {"matchLabels": _labels(options)},
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {**_labels(options), "app.kubernetes.io/component":
                                        options.component},
                             "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def _node_affinity(nodes: tuple[str, ...]) -> dict[str, Any]:
    if not nodes:
        return {}
    # The DaemonSet controller itself schedules on node names this way.
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": list(nodes)}]}]}}}}


def _host_network(needs: PodNeeds) -> dict[str, Any]:
    if not needs.host_network:
        return {}
    # A host-network pod still resolves the cluster's Services (a collector's).
    return {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}


def scrape_annotations(endpoint: ScrapeEndpoint) -> dict[str, str]:
    """What Prometheus' kubernetes_sd pod relabelling reads, by convention."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(endpoint.port),
            "prometheus.io/path": "/metrics",
            "prometheus.io/scheme": endpoint.scheme}


def container(options: DeployOptions, profiles: PodProfiles) -> dict[str, Any]:
    security: dict[str, Any] = {
        "privileged": False,
        "runAsUser": 0,     # tracefs and the tracepoint ids in it belong to root
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": list(options.capabilities)},
        "seccompProfile": seccomp_profile(options),
    }
    if not options.sys_admin:
        # The API refuses allowPrivilegeEscalation: false beside CAP_SYS_ADMIN.
        security["allowPrivilegeEscalation"] = False
    spec: dict[str, Any] = {
        "name": options.component,
        "image": options.image,
        "command": run_command(options),
        "env": [*({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
                  for name, path in DOWNWARD_ENV.items()),
                *({"name": name, "value": value} for name, value in FIXED_ENV.items()),
                *({"name": name, "value": value} for name, value in options.env)],
        "resources": RESOURCES,
        "securityContext": security,
        "volumeMounts": [
            {"name": "profiles", "mountPath": POD_PROFILES_DIR, "readOnly": True},
            # bcc may unpack kernel headers here; the root file system is read-only.
            {"name": "tmp", "mountPath": "/tmp"},
            *(_host_mount(name, path, options)
              for name, path, _ in host_mounts(options.cgroup2_path)),
        ],
        "ports": [*({"name": _port_name(index), "containerPort": endpoint.port,
                     "protocol": "TCP"} for index, endpoint in enumerate(profiles.scrape)),
                  {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        "readinessProbe": {**probe("/readyz"), **READINESS_TIMING},
        "livenessProbe": {**probe("/livez"), **LIVENESS_TIMING},
    }
    return spec


def seccomp_profile(options: DeployOptions) -> dict[str, str]:
    """RuntimeDefault, or ig-metrics' own profile (deploy/seccomp.py) from the node's
    kubelet seccomp directory, for runtimes whose default admits bpf() only
    with CAP_SYS_ADMIN."""
    if options.seccomp == "localhost":
        return {"type": "Localhost", "localhostProfile": LOCALHOST_PROFILE}
    return {"type": "RuntimeDefault"}


def _host_mount(name: str, path: str, options: DeployOptions) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path, "readOnly": True}
    if name in PROPAGATED:
        mount["mountPropagation"] = "HostToContainer"
    elif options.recursive_read_only:
        mount["recursiveReadOnly"] = "IfPossible"
    return mount


def _port_name(index: int) -> str:
    return "metrics" if index == 0 else f"metrics-{index + 1}"


def probe(path: str) -> dict[str, Any]:
    """GET on the agent's health endpoint (pipeline/probes.py), plain HTTP and
    without credentials whatever the profile's Prometheus endpoint asks for."""
    return {"httpGet": {"path": path, "port": "health", "scheme": "HTTP"}}


def parse_env(assignments: list[str]) -> tuple[tuple[str, str], ...]:
    """NAME=VALUE strings of --env, in order; ValueError for one without '='."""
    pairs = []
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name:
            raise ValueError(f"--env: '{assignment}' is not NAME=VALUE")
        pairs.append((name, value))
    return tuple(pairs)
