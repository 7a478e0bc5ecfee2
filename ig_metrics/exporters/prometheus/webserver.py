"""The HTTP server of a prometheus exporter: prometheus_client's WSGI app on its
own threaded server, optionally over TLS (mutual when a client CA is given) and
behind basic auth checked against bcrypt hashes, as Prometheus' web config does."""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import bcrypt
from prometheus_client.exposition import ThreadingWSGIServer

# Checked against when the user is unknown, so that an unknown user costs as
# much time as a wrong password (no telling which users exist). A well-formed
# hash that no password of interest matches.
_DUMMY_HASH = b"$2b$10$Xg2i4jVrE5ZVJRaIKV5AxO9HvS2J7p8qBvh9BSy2aNM6b6CEXhdDe"
CACHE_LIMIT = 256          # remembered good (user, password) pairs: bcrypt is slow on purpose


@dataclass(frozen=True, slots=True)
class ServerTlsSettings:
    """TLS of the Prometheus endpoint, as in Prometheus' own web config."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None         # set: clients must present a certificate

    def as_written(self) -> dict[str, str]:
        written = {"cert_file": str(self.cert_file), "key_file": str(self.key_file)}
        if self.client_ca_file is not None:
            written["client_ca_file"] = str(self.client_ca_file)
        return written


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class BcryptUserCheck:
    """WSGI middleware: 401 unless the request carries a user of `users` and a
    password matching its bcrypt hash."""

    def __init__(self, app: WSGIApplication, users: Iterable[tuple[str, str]],
                 realm: str) -> None:
        self.app = app
        self.users = {user: hashed.encode() for user, hashed in users}
        self.realm = realm
        self._good: set[bytes] = set()
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        if self._allowed(environ.get("HTTP_AUTHORIZATION", "")):
            return self.app(environ, start_response)
        start_response("401 Unauthorized", [
            ("WWW-Authenticate", f'Basic realm="{self.realm}"'),
            ("Content-Type", "text/plain; charset=utf-8")])
        return [b"Unauthorized\n"]

    def _allowed(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not colon:
            return False
        # The cache key is a digest of the credentials, never the password itself.
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            if key in self._good:
                return True
        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH) and hashed is not None
        if ok:
            with self._lock:
                if len(self._good) >= CACHE_LIMIT:
                    self._good.clear()
                self._good.add(key)
        return ok


def tls_context(tls: ServerTlsSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.client_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(tls.client_ca_file))
    return context


def serve(host: str, port: int, app: WSGIApplication, *, tls: ServerTlsSettings | None,
          users: tuple[tuple[str, str], ...]) -> tuple[ThreadingWSGIServer, threading.Thread]:
    """Bind, then serve in a daemon thread. Raises OSError (address in use...)
    or ssl.SSLError (a certificate or key that does not load)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family
        daemon_threads = True

    if users:
        app = BcryptUserCheck(app, users, realm="ig-metrics")
    context = tls_context(tls) if tls is not None else None
    server = make_server(host, port, app, Server, handler_class=_QuietHandler)
    if context is not None:
        # The handshake happens in the request's own thread: a client that
        # connects and stays silent must not hold up the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name=f"prometheus-{port}",
                              daemon=True)
    thread.start()
    return server, thread


