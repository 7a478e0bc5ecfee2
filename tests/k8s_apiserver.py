"""A local HTTP server that STANDS IN FOR THE KUBERNETES API SERVER in the pod
metadata tests; there is no cluster here. It serves what ig-metrics asks of a
real one, as a real one answers: GET /api/v1/pods with fieldSelector
(spec.nodeName=...), limit and continue, resourceVersion; with watch=true a
chunked stream of JSON events (ADDED, MODIFIED, DELETED, and ERROR carrying a
410 Status once the asked resourceVersion is older than the history kept);
a bearer token is required, as from a service account or a kubeconfig.

Pods are built by make_pod() as the API server sends them, and the tests
validate them against the Kubernetes OpenAPI schema."""

from __future__ import annotations

import copy
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

CREATED = "2026-01-01T00:00:00Z"


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
                 host: str = "127.0.0.1") -> None:
        self.token = token
        self._lock = threading.Condition()
        self._pods: dict[str, dict] = {}
        self._events: list[tuple[int, str, dict]] = []   # (resourceVersion, type, pod)
        self._version = 100
        self._oldest_kept = 100          # watches from an older version get 410
        self._drops = 0                  # bumped to cut every open watch
        self.requests: list[dict[str, list[str]]] = []   # query of every /api/v1/pods request
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


class _QuietServer(ThreadingHTTPServer):
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


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _handler(server: FakeApiServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:   # keep pytest's output for failures
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if self.headers.get("Authorization", "").lower() != f"bearer {server.token}":
                return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
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

        def _watch(self, selector: str | None, since: int, timeout: float) -> None:
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
                        if version > sent and _selected(pod, selector):
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
