"""A local HTTP server that STANDS IN FOR THE KUBERNETES API SERVER in the pod
metadata tests; there is no cluster here. It serves what ig-metrics asks of a
real one, as a real one answers: GET /api/v1/pods with fieldSelector
(spec.nodeName=...), limit and continue, resourceVersion; with watch=true a
chunked stream of JSON events (ADDED, MODIFIED, DELETED, and ERROR carrying a
410 Status once the asked resourceVersion is older than the history kept);
a bearer token is required, as from a service account or a kubeconfig.

For `run --cluster`, `top --cluster` and `doctor --cluster` it also serves what
the CLI asks of a real API server: GET /version; SelfSubjectAccessReviews
answered from `forbidden` (and every other request refused with 403 when its
verb and resource are in it); create, list and delete of serviceaccounts,
configmaps and daemonsets (and the namespace, ClusterRole and binding that
`deploy` writes); namespaced pods listed by label selector; pods/log and the
pods/proxy subresource. EVERY OBJECT SENT TO IT IS VALIDATED against the
Kubernetes OpenAPI schemas (kubernetes-validate, strict) and refused with 422
if invalid, as a real server would refuse it. What a kubelet does with a
DaemonSet (pods on nodes, their status, logs, the proxied port) is
tests/k8s_kubelet.py, attached with `kubelet`.

Pods are built by make_pod() as the API server sends them, and the tests
validate them against the Kubernetes OpenAPI schema."""

from __future__ import annotations

import copy
import json
import re
import ssl
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import kubernetes_validate
import yaml

CREATED = "2026-01-01T00:00:00Z"
SCHEMA_VERSION = "1.32"          # the Kubernetes version whose schemas objects must match
SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.2",
                  "gitCommit": "4b8e819355d791d96b7e9d9efe4cbafae2311c88",
                  "gitTreeState": "clean", "buildDate": "2025-02-12T21:17:51Z",
                  "goVersion": "go1.23.6", "compiler": "gc", "platform": "linux/amd64"}
# Collections the stand-in stores: URL prefix -> (plural, namespaced, kind).
COLLECTIONS = {
    "/api/v1/namespaces/{ns}/serviceaccounts": ("serviceaccounts", "", "ServiceAccount"),
    "/api/v1/namespaces/{ns}/configmaps": ("configmaps", "", "ConfigMap"),
    "/apis/apps/v1/namespaces/{ns}/daemonsets": ("daemonsets", "apps", "DaemonSet"),
    "/api/v1/namespaces": ("namespaces", "", "Namespace"),
    "/apis/rbac.authorization.k8s.io/v1/clusterroles": ("clusterroles",
                                                        "rbac.authorization.k8s.io",
                                                        "ClusterRole"),
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings": ("clusterrolebindings",
                                                               "rbac.authorization.k8s.io",
                                                               "ClusterRoleBinding"),
}
_NAMESPACED_POD = re.compile(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)(?:/(log|proxy)(/.*)?)?)?")


def make_pod(name: str, *, namespace: str = "default", node: str = "node-a",
             uid: str | None = None, ip: str | None = None,
             containers: tuple[tuple[str, str], ...] = (("app", "containerd://" + "a" * 64),),
             owner: tuple[str, str] | None = None, labels: dict[str, str] | None = None,
             phase: str = "Running", host_network: bool = False) -> dict[str, Any]:
    """A pod object as the API server returns it (apiVersion, kind, metadata,
    spec, status); `containers` are (name, containerID as in containerStatuses)."""
    metadata: dict[str, Any] = {
        "name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
        "creationTimestamp": CREATED, "labels": dict(labels or {}),
    }
    if owner is not None:
        kind, owner_name = owner
        api_version = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
        metadata["ownerReferences"] = [{
            "apiVersion": api_version, "kind": kind, "name": owner_name,
            "uid": str(uuid.uuid4()), "controller": True, "blockOwnerDeletion": True}]
    status: dict[str, Any] = {"phase": phase, "hostIP": "10.0.0.1",
                              "hostIPs": [{"ip": "10.0.0.1"}]}
    if ip is not None:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    status["containerStatuses"] = [{
        "name": container, "containerID": container_id, "image": "registry.example/app:1",
        "imageID": "registry.example/app@sha256:" + "0" * 64, "ready": phase == "Running",
        "restartCount": 0, "started": phase == "Running",
        "state": {"running": {"startedAt": CREATED}} if phase == "Running" else
                 {"terminated": {"exitCode": 0, "reason": "Completed"}},
    } for container, container_id in containers]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"nodeName": node, "hostNetwork": host_network,
                 "containers": [{"name": container, "image": "registry.example/app:1"}
                                for container, _ in containers]},
        "status": status,
    }


class FakeApiServer:
    """The stand-in API server; a context manager. `tls` = (cert_file, key_file)
    serves HTTPS, as in-cluster clients expect; `host` is the address it
    listens on (another one than loopback serves other network namespaces)."""

    def __init__(self, token: str = "test-token", tls: tuple[Path, Path] | None = None,
                 host: str = "127.0.0.1", version: str = SCHEMA_VERSION) -> None:
        self.token = token
        # The Kubernetes version it is: what /version says, and the schemas it
        # validates objects against (an older one refuses fields it lacks).
        self.version = version
        major, minor = version.split(".")
        self.version_answer = SERVER_VERSION if version == SCHEMA_VERSION else {
            **SERVER_VERSION, "major": major, "minor": minor, "gitVersion": f"v{version}.0"}
        self._lock = threading.Condition()
        self._pods: dict[str, dict] = {}
        self._events: list[tuple[int, str, dict]] = []   # (resourceVersion, type, pod)
        self._version = 100
        self._oldest_kept = 100          # watches from an older version get 410
        self._drops = 0                  # bumped to cut every open watch
        self.requests: list[dict[str, list[str]]] = []   # query of every list or watch of pods
        self.proxied: list[tuple[str, int]] = []         # (pod, bytes) of every pods/proxy answer
        # The objects of COLLECTIONS: (plural, namespace, name) -> object.
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.writes: list[tuple[str, str]] = []      # (method, path) of every POST and DELETE
        self.invalid: list[str] = []                 # objects refused by the schemas
        # (verb, resource[/subresource]) the user may not do: 403, and
        # SelfSubjectAccessReviews answer allowed: false.
        self.forbidden: set[tuple[str, str]] = set()
        # Refused with 403 although an access review allows them (an admission
        # webhook, or a right revoked between the review and the request).
        self.refused: set[tuple[str, str]] = set()
        self.kubelet = None                          # a tests.k8s_kubelet.Kubelet, if any
        self.existing_namespaces: set[str] = set()   # namespaces there from the start
        self.http = _QuietServer((host, 0), _handler(self))
        self.http.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*map(str, tls))
            self.http.socket = context.wrap_socket(self.http.socket, server_side=True)
            scheme = "https"
        self.port = self.http.server_address[1]
        self.url = f"{scheme}://{host}:{self.port}"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.drop_watches()
        self.http.shutdown()
        self.http.server_close()

    # --- changing the cluster -----------------------------------------------------------
    def add(self, pod: dict) -> None:
        self._record("ADDED", pod)

    def modify(self, pod: dict) -> None:
        self._record("MODIFIED", pod)

    def delete(self, pod: dict) -> None:
        self._record("DELETED", pod)

    def _record(self, event_type: str, pod: dict) -> None:
        with self._lock:
            self._version += 1
            pod = copy.deepcopy(pod)
            pod["metadata"]["resourceVersion"] = str(self._version)
            if event_type == "DELETED":
                self._pods.pop(pod["metadata"]["uid"], None)
            else:
                self._pods[pod["metadata"]["uid"]] = pod
            self._events.append((self._version, event_type, pod))
            self._lock.notify_all()

    def change_unseen(self, pod: dict) -> None:
        """Change a pod without an event anyone can watch: only a list shows it
        (as after the server compacted its history while a client was away)."""
        with self._lock:
            self._version += 1
            pod = copy.deepcopy(pod)
            pod["metadata"]["resourceVersion"] = str(self._version)
            self._pods[pod["metadata"]["uid"]] = pod
            self._oldest_kept = self._version

    def compact(self) -> None:
        """Forget the event history: a watch from any version seen so far gets 410 Gone."""
        with self._lock:
            self._oldest_kept = self._version
            self._events.clear()
            self._lock.notify_all()

    def drop_watches(self) -> None:
        """Cut every open watch connection, as a restarting API server would."""
        with self._lock:
            self._drops += 1
            self._lock.notify_all()

    def version_of(self, pod: dict) -> str:
        """The resourceVersion the server gave `pod` when it last changed."""
        with self._lock:
            return self._pods[pod["metadata"]["uid"]]["metadata"]["resourceVersion"]

    def watch_requests(self) -> list[dict[str, list[str]]]:
        return [query for query in self.requests if query.get("watch") == ["true"]]

    def list_requests(self) -> list[dict[str, list[str]]]:
        return [query for query in self.requests if query.get("watch") != ["true"]]

    # --- answering ----------------------------------------------------------------------
    def matching(self, selector: str | None) -> list[dict]:
        return [pod for pod in self._pods.values() if _selected(pod, selector)]

    def pods_of(self, namespace: str, label_selector: str | None) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(pod) for pod in self._pods.values()
                    if pod["metadata"]["namespace"] == namespace
                    and labels_match(pod["metadata"].get("labels", {}), label_selector)]

    def pod(self, namespace: str, name: str) -> dict | None:
        with self._lock:
            return next((copy.deepcopy(pod) for pod in self._pods.values()
                         if pod["metadata"]["namespace"] == namespace
                         and pod["metadata"]["name"] == name), None)

    def stored(self, plural: str | None = None) -> list[dict]:
        """The objects of COLLECTIONS now held (of one kind, given its plural)."""
        with self._lock:
            return [obj for (kind, _, _), obj in self.objects.items()
                    if plural is None or kind == plural]

    def mutations(self) -> list[tuple[str, str]]:
        """Every write a client made (the kubelet's pod updates are not writes of a client)."""
        return list(self.writes)


class _QuietServer(ThreadingHTTPServer):
    # A real API server listens with the kernel's largest backlog; socketserver's
    # 5 drops the handshakes of a CLI opening its 32 connections at once, and
    # each dropped one waits for the SYN-ACK's retransmission (1 s, then 3 s).
    request_queue_size = 4096

    def handle_error(self, request, client_address) -> None:
        import sys
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            return      # the client went away (a stopped watch): nothing to serve any more
        super().handle_error(request, client_address)


def _selected(pod: dict, selector: str | None) -> bool:
    if not selector:
        return True
    key, _, value = selector.partition("=")
    if key != "spec.nodeName":
        raise ValueError(f"field selector {selector!r} is not served by this stand-in")
    return pod["spec"].get("nodeName") == value


def labels_match(labels: dict[str, str], selector: str | None) -> bool:
    """A label selector of equalities, `!key` and `key` terms, comma-separated."""
    for term in filter(None, (selector or "").split(",")):
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif "=" in term:
            key, _, value = term.partition("=")
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def schema_problem(obj: dict, version: str = SCHEMA_VERSION) -> str:
    """Why `obj` does not match the Kubernetes OpenAPI schema of `version`
    ("" when it does)."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{'.'.join(map(str, error.path))}: {error.message}"
    return ""


def _collection(path: str) -> tuple[str, str, str | None, str] | None:
    """(plural, namespace, name or None, kind) of a path under COLLECTIONS."""
    for template, (plural, _group, kind) in COLLECTIONS.items():
        pattern = re.escape(template).replace(re.escape("{ns}"), "([^/]+)")
        match = re.fullmatch(pattern + r"(?:/([^/]+))?", path)
        if match:
            groups = match.groups()
            namespace = groups[0] if "{ns}" in template else ""
            name = groups[-1]
            return plural, namespace, unquote(name) if name else None, kind
    return None


def _api_version(path: str) -> str:
    return path.split("/")[2] if path.startswith("/api/") else "/".join(path.split("/")[2:4])


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _handler(server: FakeApiServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # As a real server: an answer is not held back waiting for the client's
        # delayed ACK (about 40 ms a request with Nagle's algorithm on).
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:   # keep pytest's output for failures
            pass

        def _authorized(self) -> bool:
            if self.headers.get("Authorization", "").lower() != f"bearer {server.token}":
                self._json(401, _status(401, "Unauthorized", "Unauthorized"))
                return False
            return True

        def _permitted(self, verb: str, resource: str, namespace: str) -> bool:
            if (verb, resource) not in server.forbidden | server.refused:
                return True
            plural, _, sub = resource.partition("/")
            self._json(403, _status(403, "Forbidden", (
                f'{plural}{" " + repr(sub) if sub else ""} is forbidden: User "test-user" '
                f'cannot {verb} resource "{plural}" in API group "" in the namespace '
                f'"{namespace}"')))
            return False

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if not self._authorized():
                return
            if parts.path.rstrip("/") == "/version":
                return self._json(200, server.version_answer)
            pods = _NAMESPACED_POD.fullmatch(parts.path)
            if pods:
                return self._namespaced_pods(parts, *pods.groups())
            collection = _collection(parts.path)
            if collection is not None and collection[2] is None:
                plural, namespace, _name, kind = collection
                if not self._permitted("list", plural, namespace):
                    return
                selector = parse_qs(parts.query).get("labelSelector", [None])[0]
                items = [obj for obj in server.stored(plural)
                         if obj["metadata"].get("namespace", "") == namespace
                         and labels_match(obj["metadata"].get("labels", {}), selector)]
                return self._json(200, {"kind": f"{kind}List", "apiVersion": _api_version(
                    parts.path), "metadata": {"resourceVersion": str(server._version)},
                    "items": items})
            if parts.path != "/api/v1/pods":
                return self._json(404, _status(404, "NotFound", f"no {parts.path} here"))
            query = parse_qs(parts.query)
            server.requests.append(query)
            selector = query.get("fieldSelector", [None])[0]
            if query.get("watch") == ["true"]:
                return self._watch(selector, int(query["resourceVersion"][0]),
                                   float(query.get("timeoutSeconds", ["30"])[0]))
            return self._list(selector, int(query.get("limit", ["0"])[0]),
                              int(query.get("continue", ["0"])[0]))

        def _namespaced_pods(self, parts, namespace: str, name: str | None, sub: str | None,
                             rest: str | None) -> None:
            query = parse_qs(parts.query)
            if name is None:
                labels = query.get("labelSelector", [None])[0]
                if query.get("watch") == ["true"]:
                    if not self._permitted("watch", "pods", namespace):
                        return
                    server.requests.append(query)
                    return self._watch(None, int(query.get("resourceVersion", ["0"])[0]),
                                       float(query.get("timeoutSeconds", ["30"])[0]),
                                       lambda pod: pod["metadata"]["namespace"] == namespace
                                       and labels_match(pod["metadata"].get("labels", {}),
                                                        labels))
                if not self._permitted("list", "pods", namespace):
                    return
                server.requests.append(query)
                items = server.pods_of(namespace, labels)
                return self._json(200, {"kind": "PodList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": str(server._version)},
                                        "items": items})
            name = unquote(name)
            if not self._permitted("get", f"pods/{sub}" if sub else "pods", namespace):
                return
            scheme, port = "http", None
            if sub == "proxy":
                # name is POD, POD:PORT or https:POD:PORT, as for a real API server.
                pieces = name.split(":")
                if pieces[0] in ("http", "https") and len(pieces) == 3:
                    scheme, name, port = pieces
                elif len(pieces) == 2:
                    name, port = pieces
            pod = server.pod(namespace, name)
            if pod is None or (sub and server.kubelet is None):
                return self._json(404, _status(404, "NotFound", f'pods "{name}" not found'))
            if sub is None:
                return self._json(200, pod)
            if sub == "log":
                code, body = server.kubelet.log(pod, previous=query.get("previous") == ["true"],
                                                tail=int(query.get("tailLines", ["0"])[0]))
                return self._bytes(code, body, "text/plain")
            target = unquote(rest or "/") + (f"?{parts.query}" if parts.query else "")
            code, body, content_type = server.kubelet.proxy(pod, scheme, int(port or 80), target)
            server.proxied.append((name, len(body)))
            return self._bytes(code, body, content_type)

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            if not self._authorized():
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if parts.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
                return self._access_review(body)
            collection = _collection(parts.path)
            if collection is None or collection[2] is not None:
                return self._json(404, _status(404, "NotFound", f"no {parts.path} here"))
            plural, namespace, _name, kind = collection
            server.writes.append(("POST", parts.path))
            if not self._permitted("create", plural, namespace):
                return
            problem = schema_problem(body, server.version)
            if body.get("kind") != kind or problem:
                server.invalid.append(f"{body.get('kind')} {parts.path}: {problem}")
                return self._json(422, _status(422, "Invalid", f"{kind} is invalid: {problem}"))
            name = body["metadata"]["name"]
            if namespace and namespace not in {obj["metadata"]["name"] for obj in
                                               server.stored("namespaces")} \
                    and namespace not in server.existing_namespaces:
                return self._json(404, _status(404, "NotFound",
                                               f'namespaces "{namespace}" not found'))
            key = (plural, namespace, name)
            if key in server.objects:
                return self._json(409, _status(409, "AlreadyExists",
                                               f'{plural} "{name}" already exists'))
            stored = copy.deepcopy(body)
            stored["metadata"].update({"uid": str(uuid.uuid4()), "creationTimestamp": CREATED,
                                       "resourceVersion": str(server._version)})
            if namespace:
                stored["metadata"]["namespace"] = namespace
            server.objects[key] = stored
            if kind == "DaemonSet" and server.kubelet is not None:
                server.kubelet.daemon_set_created(stored)
            return self._json(201, stored)

        def do_DELETE(self) -> None:
            parts = urlsplit(self.path)
            if not self._authorized():
                return
            collection = _collection(parts.path)
            if collection is None or collection[2] is None:
                return self._json(404, _status(404, "NotFound", f"no {parts.path} here"))
            plural, namespace, name, kind = collection
            server.writes.append(("DELETE", parts.path))
            if not self._permitted("delete", plural, namespace):
                return
            length = int(self.headers.get("Content-Length", 0))
            if length:
                self.rfile.read(length)
            stored = server.objects.pop((plural, namespace, name), None)
            if stored is None:
                return self._json(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
            if kind == "DaemonSet" and server.kubelet is not None:
                server.kubelet.daemon_set_deleted(stored)    # its pods go, as the GC does
            return self._json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Success"})

        def _access_review(self, review: dict) -> None:
            problem = schema_problem(review)
            if problem:
                server.invalid.append(f"SelfSubjectAccessReview: {problem}")
                return self._json(422, _status(422, "Invalid", problem))
            attributes = review["spec"]["resourceAttributes"]
            resource = attributes["resource"]
            if attributes.get("subresource"):
                resource += "/" + attributes["subresource"]
            allowed = (attributes["verb"], resource) not in server.forbidden
            answer = copy.deepcopy(review)
            answer["status"] = {"allowed": allowed}
            if allowed:
                answer["status"]["reason"] = "RBAC: allowed by the test's role"
            return self._json(201, answer)

        def _bytes(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _list(self, selector: str | None, limit: int, start: int) -> None:
            with server._lock:
                pods = sorted(server.matching(selector), key=lambda p: p["metadata"]["name"])
                version = str(server._version)
            page = pods[start:start + limit] if limit else pods[start:]
            metadata = {"resourceVersion": version}
            if limit and start + limit < len(pods):
                metadata["continue"] = str(start + limit)
            # List items carry no kind and apiVersion, as from a real server.
            items = [{key: value for key, value in pod.items()
                      if key not in ("kind", "apiVersion")} for pod in page]
            self._json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": metadata,
                             "items": items})

        def _watch(self, selector: str | None, since: int, timeout: float,
                   match=None) -> None:
            match = match or (lambda pod: _selected(pod, selector))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with server._lock:
                drops = server._drops
                if since < server._oldest_kept:
                    self._chunk({"type": "ERROR", "object": _status(
                        410, "Expired", f"too old resource version: {since} "
                                        f"({server._oldest_kept})")})
                    return self._end()
                sent = since
                deadline = time.monotonic() + timeout
                while True:
                    for version, event_type, pod in server._events:
                        if version > sent and match(pod):
                            self._chunk({"type": event_type, "object": pod})
                        sent = max(sent, version)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return self._end()
                    server._lock.wait(remaining)
                    if server._drops != drops:
                        self.close_connection = True   # no final chunk: a cut connection
                        return

        def _chunk(self, event: dict) -> None:
            data = (json.dumps(event) + "\n").encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _end(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _json(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def cluster_with_namespace(directory: Path, namespace: str):
    """A stand-in API server where `namespace` exists, its kubeconfig written
    in `directory` (`.kubeconfig`); nothing sent to it may have been invalid."""
    with FakeApiServer() as server:
        server.existing_namespaces.add(namespace)
        server.kubeconfig = write_kubeconfig(directory / "kubeconfig", server)
        yield server
    assert server.invalid == []


def write_kubeconfig(path: Path, server: FakeApiServer, ca_file: Path | None = None) -> Path:
    """A kubeconfig as kubectl writes one, pointing at the stand-in with its token."""
    cluster: dict[str, Any] = {"server": server.url}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "ig-metrics", "user": {"token": server.token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "ig-metrics"}}],
    }))
    return path
