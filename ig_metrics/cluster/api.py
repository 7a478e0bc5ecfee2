"""The CLI's side of a cluster, through the API server only: connecting with a
kubeconfig context, checking the user's rights (SelfSubjectAccessReview),
creating and deleting a run's objects, the state of its pods, and the paths
of a pod's pods/proxy and pods/log subresources (read by
cluster/apireader.py). Never a pod IP: the CLI needs to reach the API server
only."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ig_metrics.k8s.apiclient import DEFAULT_KUBECONFIG

API_TIMEOUT = 10.0        # seconds for one request to the API server
MAX_IN_FLIGHT = 32        # node reads in flight at once (and connections kept for them)
LOG_TAIL_LINES = 20


class ClusterError(RuntimeError):
    """Something the user must fix about the cluster or their access (exit 1)."""


@dataclass(frozen=True, slots=True)
class Access:
    """One right the CLI user needs: `verb` on `resource` (`subresource`) of `group`."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    why: str = ""

    @property
    def label(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {resource}" + (f" ({self.group})" if self.group else "")


# What reading the nodes calls (run --cluster and top --cluster), in one namespace.
READ_ACCESS = (
    Access("list", "pods", why="the progress of each node, the pods to read"),
    Access("watch", "pods", why="the pods followed by one watch, not listed each refresh"),
    Access("get", "pods", subresource="proxy", why="each node's summary, through the API server"),
    Access("get", "pods", subresource="log", why="why a node failed, from its pod's log"),
)
# What `run --cluster` calls, in one namespace; nothing cluster-wide.
RUN_ACCESS = (
    *(Access(verb, resource, group, why=why)
      for resource, group in (("serviceaccounts", ""), ("configmaps", ""),
                              ("daemonsets", "apps"))
      for verb, why in (("create", "run --cluster creates it"),
                        ("delete", "run --cluster deletes it on exit"))),
    *READ_ACCESS,
)
# What `top --cluster` adds: finding the standing DaemonSet.
TOP_ACCESS = (Access("list", "daemonsets", "apps", why="top --cluster finds the deployment"),)


@dataclass
class Cluster:
    """An API client for one kubeconfig context, with the names errors need."""

    client: Any                  # kubernetes.client.ApiClient
    context: str
    server: str
    kubeconfig: Path
    version: str = ""
    minor_version: str = ""      # "1.29": what the manifests are written for

    @property
    def where(self) -> str:
        return f"context {self.context}, server {self.server}"

    def _api(self, name: str):
        from kubernetes import client
        return getattr(client, name)(self.client)

    # --- rights ----------------------------------------------------------------------
    def allowed(self, access: Access, namespace: str) -> tuple[bool, str]:
        """(allowed, the authorizer's reason) for the current user."""
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {
                      "namespace": namespace, "verb": access.verb, "group": access.group,
                      "resource": access.resource, "subresource": access.subresource}}}
        answer = _json(self._call(lambda: self._api("AuthorizationV1Api")
                                  .create_self_subject_access_review(
                                      review, _request_timeout=API_TIMEOUT,
                                      _preload_content=False),
                                  "create selfsubjectaccessreviews"))
        status = answer.get("status", {})
        return bool(status.get("allowed")), status.get("reason", "")

    def missing(self, accesses: Iterable[Access], namespace: str) -> list[Access]:
        return [access for access in accesses if not self.allowed(access, namespace)[0]]

    # --- objects ---------------------------------------------------------------------
    def create(self, manifest: dict) -> None:
        kind, namespace = manifest["kind"], manifest["metadata"].get("namespace", "")
        calls = {
            "ServiceAccount": lambda: self._api("CoreV1Api").create_namespaced_service_account(
                namespace, manifest, _request_timeout=API_TIMEOUT, _preload_content=False),
            "ConfigMap": lambda: self._api("CoreV1Api").create_namespaced_config_map(
                namespace, manifest, _request_timeout=API_TIMEOUT, _preload_content=False),
            "DaemonSet": lambda: self._api("AppsV1Api").create_namespaced_daemon_set(
                namespace, manifest, _request_timeout=API_TIMEOUT, _preload_content=False),
        }
        self._call(calls[kind], f"create {_plural(kind)} in namespace {namespace}")

    def delete(self, kind: str, name: str, namespace: str) -> bool:
        """Delete one object (its pods go with a DaemonSet); False if it was gone."""
        from kubernetes.client.exceptions import ApiException

        # As a query parameter: no DeleteOptions body to send. Background: the
        # DaemonSet goes at once and the garbage collector deletes its pods.
        options = {"propagation_policy": "Background", "_request_timeout": API_TIMEOUT,
                   "_preload_content": False}
        calls = {
            "ServiceAccount": lambda: self._api("CoreV1Api").delete_namespaced_service_account(
                name, namespace, **options),
            "ConfigMap": lambda: self._api("CoreV1Api").delete_namespaced_config_map(
                name, namespace, **options),
            "DaemonSet": lambda: self._api("AppsV1Api").delete_namespaced_daemon_set(
                name, namespace, **options),
        }
        try:
            self._call(calls[kind], f"delete {_plural(kind)} in namespace {namespace}",
                       passthrough=(404,))
        except ApiException:
            return False
        return True

    def daemon_sets(self, namespace: str, selector: str) -> list[dict]:
        listed = self._call(lambda: self._api("AppsV1Api").list_namespaced_daemon_set(
            namespace, label_selector=selector, _request_timeout=API_TIMEOUT,
            _preload_content=False), f"list daemonsets in namespace {namespace}")
        return _json(listed)["items"]

    def pods(self, namespace: str, selector: str) -> list[dict]:
        listed = self._call(lambda: self._api("CoreV1Api").list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=API_TIMEOUT,
            _preload_content=False), f"list pods in namespace {namespace}")
        return _json(listed)["items"]

    # --- reading the nodes (cluster/apireader.py) ----------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """The credential headers of a request now (a bearer token), after the
        kubeconfig's refresh hook has renewed an expired one."""
        return {entry["key"]: entry["value"]
                for entry in self.client.configuration.auth_settings().values()}

    def _call(self, call, what: str, passthrough: tuple[int, ...] = ()):
        """`call()`, its failures turned into ClusterError naming what was tried."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return call()
        except ApiException as error:
            if error.status in passthrough:
                raise
            raise ClusterError(api_error(error, what, self.where)) from error
        except (HTTPError, OSError) as error:
            raise ClusterError(f"cannot reach the API server ({self.where}): "
                               f"{_reason(error)}") from error

    def close(self) -> None:
        self.client.close()


def pod_proxy_path(namespace: str, pod: str, port: int, path: str) -> str:
    """GET `path` (with its query) from the pod's http `port` through pods/proxy:
    the API server (its kubelet connection) reaches the pod, the CLI only the
    API server."""
    where, _, query = path.lstrip("/").partition("?")
    return (f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(f'{pod}:{port}')}"
            f"/proxy/{where}" + (f"?{query}" if query else ""))


def pod_log_path(namespace: str, pod: str, *, previous: bool,
                 lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` of the pod's log, of its previous container if `previous`."""
    return (f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log?tailLines={lines}"
            + ("&previous=true" if previous else ""))


def api_error(error, what: str, where: str) -> str:
    """api_message of the kubernetes client's ApiException."""
    return api_message(error.status, error.reason, error.body, what, where)


def api_message(status: int, reason: str | None, body: str | None, what: str,
                where: str) -> str:
    """One line for an API server's refusal: the verb and resource, and its message."""
    try:
        message = json.loads(body or "").get("message", "")
    except (TypeError, ValueError, AttributeError):
        message = str(reason or "")
    if status == 403:
        return (f"forbidden: you may not {what} ({where}); ask for that right, or run "
                f"'ig-metrics doctor --cluster' for every right needed. The API server "
                f"said: {message}")
    if status == 401:
        return f"the API server refused the credentials of {where} (401 Unauthorized)"
    return f"cannot {what} ({where}): {status} {reason}: {message}"


def _reason(error: BaseException) -> str:
    """urllib3's innermost words: '[Errno 111] Connection refused', not its wrappers."""
    text = str(getattr(error, "reason", None) or error)
    return text.rsplit("Failed to establish a new connection: ", 1)[-1]


def _plural(kind: str) -> str:
    return {"ServiceAccount": "serviceaccounts", "ConfigMap": "configmaps",
            "DaemonSet": "daemonsets"}[kind]


def _json(response) -> dict:
    return json.loads(response.data)


def kubeconfig_path(given: Path | None, environ=os.environ) -> Path:
    if given is not None:
        if not given.is_file():
            raise ClusterError(f"kubeconfig {given} does not exist")
        return given
    for candidate in (*environ.get("KUBECONFIG", "").split(os.pathsep),
                      str(DEFAULT_KUBECONFIG.expanduser())):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ClusterError("no kubeconfig: $KUBECONFIG is not set and ~/.kube/config does not "
                       "exist; give one with --kubeconfig FILE")


def connect(kubeconfig: Path | None = None, context: str | None = None,
            environ=os.environ) -> Cluster:
    """A Cluster for `context` (default: the kubeconfig's current one), after
    asking the API server its version: ClusterError naming the context and
    server when it cannot be reached or refuses the credentials."""
    import urllib3
    from kubernetes import client, config

    path = kubeconfig_path(kubeconfig, environ)
    try:
        contexts, current = config.list_kube_config_contexts(str(path))
        chosen = next((entry for entry in contexts if entry["name"] == context), None) \
            if context else current
        if chosen is None:
            names = ", ".join(entry["name"] for entry in contexts)
            raise ClusterError(f"--context: no context '{context}' in {path} (it has: {names})")
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(path), context=chosen["name"],
                                client_configuration=configuration, persist_config=False)
    except config.ConfigException as error:
        raise ClusterError(f"cannot use kubeconfig {path}: {error}") from error
    # No retries: an unreachable server is reported at once, not after three tries.
    configuration.retries = False
    proxy = urlsplit(configuration.proxy or "")
    if proxy.username and not configuration.proxy_headers:
        # As kubectl: a proxy-url's user and password are its credentials (the
        # kubernetes client would send none).
        configuration.proxy_headers = urllib3.make_headers(
            proxy_basic_auth=f"{unquote(proxy.username)}:{unquote(proxy.password or '')}")
    api = client.ApiClient(configuration)
    cluster = Cluster(api, chosen["name"], api.configuration.host, path)
    answer = _json(cluster._call(lambda: client.VersionApi(api).get_code(
        _request_timeout=API_TIMEOUT, _preload_content=False), "get the version"))
    cluster.version = answer.get("gitVersion", "")
    cluster.minor_version = server_minor_version(answer)
    return cluster


def server_minor_version(answer: dict) -> str:
    """MAJOR.MINOR of a /version answer ("1.29"; managed clusters say "29+"),
    or "" when it says neither."""
    major = re.sub(r"\D", "", str(answer.get("major", "")))
    minor = re.sub(r"\D", "", str(answer.get("minor", "")))
    if not (major and minor):
        found = re.match(r"v?(\d+)\.(\d+)", answer.get("gitVersion", ""))
        return f"{found[1]}.{found[2]}" if found else ""
    return f"{major}.{minor}"


# --- pods as the progress line shows them ----------------------------------------------
PENDING, PULLING, RUNNING, READY, FAILED, GONE = (
    "pending", "pulling", "running", "ready", "failed", "gone")
# Waiting reasons that will not resolve by waiting (the kubelet retries them
# with backoff, but a person must act).
FAILED_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                            "ErrImageNeverPull", "CrashLoopBackOff", "CreateContainerError",
                            "CreateContainerConfigError", "RunContainerError"})


@dataclass
class PodState:
    """A pod of the DaemonSet as the progress line and the node line show it."""

    name: str
    node: str
    state: str                   # PENDING ... FAILED
    reason: str = ""             # the pod's own words (waiting/terminated reason, message)
    restarts: int = 0
    last_exit: str = ""          # of the previous container, when it restarted

    @property
    def crashed(self) -> bool:
        return self.restarts > 0 or self.reason.startswith("CrashLoopBackOff")


def pod_state(pod: dict) -> PodState:
    metadata, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    node = spec.get("nodeName", "")
    statuses = status.get("containerStatuses") or []
    restarts = sum(entry.get("restartCount", 0) for entry in statuses)
    last_exit = ""
    for entry in statuses:
        terminated = (entry.get("lastState") or {}).get("terminated")
        if terminated:
            last_exit = (f"exit {terminated.get('exitCode')}"
                         f" ({terminated.get('reason', 'Error')})")
    result = PodState(metadata["name"], node, PENDING, restarts=restarts, last_exit=last_exit)
    if metadata.get("deletionTimestamp"):
        result.state, result.reason = GONE, "terminating"
        return result
    if not node:
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                result.reason = _words(condition.get("reason"), condition.get("message"))
        return result
    for entry in statuses:
        state = entry.get("state") or {}
        if "waiting" in state:
            waiting = state["waiting"]
            reason = waiting.get("reason", "")
            result.reason = _words(reason, waiting.get("message"))
            result.state = FAILED if reason in FAILED_WAITING else \
                PULLING if reason == "ContainerCreating" else PENDING
            return result
        if "terminated" in state:
            terminated = state["terminated"]
            result.state = FAILED
            result.reason = _words(terminated.get("reason", "Terminated"),
                                   f"exit {terminated.get('exitCode')}")
            return result
        if "running" in state:
            result.state = READY if entry.get("ready") else RUNNING
    if status.get("phase") == "Failed":
        result.state, result.reason = FAILED, _words(status.get("reason"), status.get("message"))
    return result


def _words(reason: str | None, message: str | None) -> str:
    return ": ".join(part for part in (reason, message) if part)


# What `ig-metrics run` prints after the reasons it refused to start.
DOCTOR_HINT = "Run 'ig-metrics doctor'"


def last_log_line(text: str) -> str:
    """The line of a log that says why: the last one that is not empty (nor
    the hint to run doctor that follows the reasons)."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith(DOCTOR_HINT)]
    return lines[-1] if lines else ""


def wait_gone(cluster: Cluster, namespace: str, selector: str, timeout: float) -> list[str]:
    """Until no pod matches `selector` (their processes have ended); the names
    of those left when `timeout` ran out."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pod["metadata"]["name"] for pod in cluster.pods(namespace, selector)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)
