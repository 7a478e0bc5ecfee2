"""`doctor`'s view of container and pod attribution: is there a cgroup v2
hierarchy to resolve cgroup ids in (and is any cgroup hierarchy writable from
here, k8s/cgroupwrites.py), are there kubelet pods on this host, can
new cgroups' paths be recorded as they are made, and can the pod metadata be
had from the Kubernetes API. Informational: gadgets
run without any of it, their series then just carry no container or pod."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ig_metrics.bpf.cgroupfs import MOUNTS_FILE, NoCgroup2Mount, find_cgroup2_mount
from ig_metrics.bpf.environment import DEFAULT_PATHS, MOUNT_TRACEFS, Check, HostPaths, find_tracefs
from ig_metrics.k8s.apiclient import KubernetesUnavailable, api_client
from ig_metrics.k8s.cgrouprecorder import TRACEPOINT, WITHOUT, tracepoint_problem
from ig_metrics.k8s.cgroupwrites import check_cgroup_writes

API_TIMEOUT = 3.0           # seconds doctor waits for the API server
KUBEPODS = ("kubepods.slice", "kubepods")      # kubelet's systemd and cgroupfs drivers


def attribution_checks(environ: Mapping[str, str] = os.environ,
                       mounts_file: Path = MOUNTS_FILE,
                       paths: HostPaths = DEFAULT_PATHS) -> list[Check]:
    return [check_cgroup_hierarchy(mounts_file), check_cgroup_writes(paths),
            check_new_cgroups(paths), check_kubernetes_api(environ)]


def check_cgroup_hierarchy(mounts_file: Path = MOUNTS_FILE) -> Check:
    try:
        mount = find_cgroup2_mount(mounts_file)
    except NoCgroup2Mount as error:
        return Check("cgroup-v2", False, f"{error}; series carry no container or pod",
                     "mount it: mount -t cgroup2 none /sys/fs/cgroup", required=False)
    pods = next((mount / name for name in KUBEPODS if (mount / name).is_dir()), None)
    if pods is None:
        found = "no kubelet pods on this host (no kubepods cgroup)"
    else:
        found = f"kubelet pods under {pods} ({'systemd' if pods.suffix else 'cgroupfs'} driver)"
    return Check("cgroup-v2", True, f"mounted at {mount}: cgroup ids resolve to container.id "
                 f"and k8s.pod.uid from their paths; {found}", required=False)


def check_new_cgroups(paths: HostPaths = DEFAULT_PATHS) -> Check:
    """Can the path of each new cgroup be recorded in the kernel as it is made
    (k8s/cgrouprecorder.py)?"""
    problem = tracepoint_problem(paths)
    if problem is not None:
        fix = (f"mount it: {MOUNT_TRACEFS}" if find_tracefs(paths) is None
               else f"Linux 5.5 and later have {TRACEPOINT} as needed")
        return Check("cgroup-mkdir", False, f"{problem}: each cgroup is resolved when its "
                     f"counts are first read; {WITHOUT}", fix, required=False)
    return Check("cgroup-mkdir", True, f"{TRACEPOINT}: new cgroups' paths are recorded as "
                 "they are made; a container gone before its counts are read keeps its "
                 "container.id and k8s.pod.uid", required=False)


def check_kubernetes_api(environ: Mapping[str, str] = os.environ) -> Check:
    node = environ.get("NODE_NAME")
    if not node:
        return Check("kubernetes-api", False, "NODE_NAME is not set: pod names, namespaces "
                     "and owners are not looked up (container.id and k8s.pod.uid still are)",
                     "on Kubernetes, 'ig-metrics deploy' sets NODE_NAME from the downward API",
                     required=False)
    try:
        client = api_client(environ=environ)
    except KubernetesUnavailable as error:
        return Check("kubernetes-api", False, f"NODE_NAME={node}, but {error}",
                     "run in a pod with a service account, or set KUBECONFIG", required=False)
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        listed = CoreV1Api(client).list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node}", limit=500, _request_timeout=API_TIMEOUT)
    except ApiException as error:
        fix = ("grant get, list and watch on pods (the ClusterRole 'ig-metrics deploy' "
               "writes)") if error.status in (401, 403) else "check the API server's address"
        return Check("kubernetes-api", False, f"{client.configuration.host} answered "
                     f"{error.status} {error.reason} to a list of node {node}'s pods", fix,
                     required=False)
    except (HTTPError, OSError) as error:
        return Check("kubernetes-api", False, f"{client.configuration.host} cannot be reached: "
                     f"{error}", "check the API server's address and the network policy",
                     required=False)
    finally:
        client.close()
    more = "+" if listed.metadata is not None and listed.metadata._continue else ""
    return Check("kubernetes-api", True, f"{client.configuration.host}: {len(listed.items)}"
                 f"{more} pods on node {node}; pod names, namespaces and owners are added",
                 required=False)
