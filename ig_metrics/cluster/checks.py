"""`doctor --cluster`'s checks: can the API server be reached with the
kubeconfig's context, is the cluster new enough, and may the current user do
each thing `run --cluster` and `top --cluster` do (a SelfSubjectAccessReview per
right, the same list the commands use)."""

from __future__ import annotations

from pathlib import Path

from ig_metrics.bpf.environment import Check
from ig_metrics.cluster.api import RUN_ACCESS, TOP_ACCESS, Access, Cluster, ClusterError, connect

MIN_VERSION = (1, 19)        # SelfSubjectAccessReview v1, DaemonSet apps/v1, pods/proxy


def cluster_checks(kubeconfig: Path | None, context: str | None, namespace: str) -> list[Check]:
    """Required: the API server, its version, each right of `run --cluster`;
    informational: what `top --cluster` needs besides."""
    try:
        cluster = connect(kubeconfig, context)
    except ClusterError as error:
        return [Check("cluster:api-server", False, str(error),
                      "check the kubeconfig, its context and the network to the API server")]
    checks = [Check("cluster:api-server", True, f"{cluster.where}"),
              _version_check(cluster.version)]
    try:
        checks.extend(_access_check(cluster, access, namespace, True) for access in RUN_ACCESS)
        checks.extend(_access_check(cluster, access, namespace, False) for access in TOP_ACCESS)
        return checks
    except ClusterError as error:
        return [*checks, Check("cluster:access-review", False, str(error),
                               "grant create on selfsubjectaccessreviews (every "
                               "authenticated user has it by default)")]
    finally:
        cluster.close()


def _version_check(version: str) -> Check:
    digits = version.lstrip("v").split(".")
    try:
        found = (int(digits[0]), int("".join(c for c in digits[1] if c.isdigit())))
    except (IndexError, ValueError):
        return Check("cluster:version", False, f"the API server says version {version!r}",
                     required=False)
    ok = found >= MIN_VERSION
    return Check("cluster:version", ok, f"Kubernetes {version}",
                 "" if ok else f"ig-metrics needs Kubernetes {MIN_VERSION[0]}.{MIN_VERSION[1]} "
                 "or newer")


def _access_check(cluster: Cluster, access: Access, namespace: str, required: bool) -> Check:
    allowed, reason = cluster.allowed(access, namespace)
    needed = "run --cluster" if required else "top --cluster"
    detail = (f"{'allowed' if allowed else 'forbidden'} in namespace {namespace}: "
              f"{access.why}" + (f" ({reason})" if reason else ""))
    fix = "" if allowed else (f"grant '{access.label}' in namespace {namespace} (needed by "
                              f"{needed}; docs/kubernetes.md has the Role)")
    return Check(f"rbac:{access.label}", allowed, detail, fix, required=required)
