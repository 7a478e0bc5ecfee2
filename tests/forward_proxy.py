"""THIS STANDS IN FOR A CORPORATE HTTP PROXY between a kubectl user and the API
server (a kubeconfig's `proxy-url`): real sockets, as squid or any forward
proxy answers a client. It tunnels `CONNECT host:port` (how https goes
through it) and passes an absolute-form request (`GET http://host:port/...`,
how plain http goes through it) on to its host, then copies bytes both ways
until either side closes. With `credentials` it answers 407 to a request
without that Basic Proxy-Authorization. It records each request it took, and its own end of each connection onward."""

from __future__ import annotations

import base64
import selectors
import socket
import socketserver
import threading
from urllib.parse import urlsplit


class ForwardProxy:
    """A context manager; `url` is what a kubeconfig's proxy-url names."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.taken: list[tuple[str, str]] = []       # (method, target) of each request
        self.refused = 0                             # answered 407
        # The proxy's own ends of its connections onward: what the server sees
        # as the client's address of whatever came through the proxy.
        self.upstreams: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        user = "" if self.credentials is None else "{}:{}@".format(*self.credentials)
        return f"http://{user}127.0.0.1:{self.port}"

    def __enter__(self) -> ForwardProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _authorized(self, head: bytes) -> bool:
        if self.credentials is None:
            return True
        token = base64.b64encode("{}:{}".format(*self.credentials).encode())
        return any(line.lower().startswith(b"proxy-authorization:")
                   and line.split(b":", 1)[1].strip() == b"Basic " + token
                   for line in head.split(b"\r\n"))

    def _handler(self):
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client: socket.socket = self.request
                head = b""
                while b"\r\n\r\n" not in head:
                    data = client.recv(65536)
                    if not data:
                        return
                    head += data
                method, target = head.split(b" ", 2)[:2]
                if not proxy._authorized(head.partition(b"\r\n\r\n")[0]):
                    with proxy._lock:
                        proxy.refused += 1
                    client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                   b"Proxy-Authenticate: Basic realm=\"proxy\"\r\n"
                                   b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                with proxy._lock:
                    proxy.taken.append((method.decode(), target.decode()))
                if method == b"CONNECT":
                    host, _, port = target.decode().rpartition(":")
                    upstream = socket.create_connection((host, int(port)))
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    rest = head.partition(b"\r\n\r\n")[2]
                else:
                    where = urlsplit(target.decode())
                    upstream = socket.create_connection((where.hostname, where.port or 80))
                    rest = head           # the server takes the absolute form as it is
                with proxy._lock:
                    proxy.upstreams.add(upstream.getsockname())
                with upstream:
                    if rest:
                        upstream.sendall(rest)
                    _copy_both_ways(client, upstream)

        return Handler


def _copy_both_ways(one: socket.socket, other: socket.socket) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(one, selectors.EVENT_READ, other)
        selector.register(other, selectors.EVENT_READ, one)
        while True:
            for key, _ in selector.select():
                data = key.fileobj.recv(65536)        # type: ignore[union-attr]
                if not data:
                    return
                key.data.sendall(data)
