"""GETs through the API server for the cluster view (each node's summary
through pods/proxy, a failed pod's log): one event loop thread, at most
`connections` keep-alive HTTP/1.1 connections, with the kubeconfig's TLS,
credentials and HTTP proxy.

Why not the kubernetes client's urllib3 pool from a pool of threads, as the
other calls: at 1,000 nodes a refresh is 1,000 requests, and that path cost
0.5-0.8 ms of CPU each (http.client's header parsing, urllib3's layers, the
GIL handed between 32 threads), 0.75-0.91 s a refresh against 0.34-0.40 s
here; aiohttp, the client of kubernetes' asyncio half, costs about twice
this protocol's CPU for the same reads (docs/performance.md). What the reads need of HTTP is
small: GET, an answer of Content-Length, chunks (an API server passes a
pod's chunked answer on) or until close, keep-alive."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ig_metrics import __version__
from ig_metrics.cluster.api import Cluster, ClusterError, api_message

T = TypeVar("T")
MAX_HEAD = 64 * 1024         # bytes of status line and headers before giving up
MAX_BODY = 16 * 2**20        # bytes of a body (a summary is a few KB, a log tail less)
CLOSE_TIMEOUT = 5.0          # seconds close() waits for the loop to cancel its reads


class ReadError(ClusterError):
    """A GET that got no answer it could use: `status` is the HTTP status of a
    refusal (404: nothing there), 0 when no answer came."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ClosedUnanswered(ReadError):
    """The connection closed before any byte of the answer: on a kept
    connection, the server (or a load balancer) had closed it as idle while
    the request was on its way; the request is sent again on a new one."""


@dataclass(frozen=True)
class Route:
    """How to reach the API server: where to connect (the server, or an HTTP
    proxy that tunnels to it with CONNECT), with what TLS, and the request
    target's prefix."""

    host: str                     # where the TCP connection goes
    port: int
    tls: ssl.SSLContext | None    # for the API server (https)
    server_hostname: str          # what the server's certificate must name
    authority: str                # the Host header: the API server's host[:port]
    base_path: str                # the server URL's path ("" or "/k8s/clusters/c-1")
    tunnel: bool = False          # CONNECT through the proxy first (https through a proxy)
    absolute: bool = False        # an http server through a proxy: absolute request targets
    proxy_headers: tuple[tuple[str, str], ...] = ()


def route(configuration: Any) -> Route:
    """The Route of a kubernetes client Configuration (what the kubeconfig's
    cluster and user say): ClusterError for a proxy it cannot use."""
    from kubernetes.client.rest import should_bypass_proxies

    server = urlsplit(configuration.host)
    if server.scheme not in ("http", "https") or not server.hostname:
        raise ClusterError(f"the API server's URL {configuration.host} is not http(s)://HOST")
    secure = server.scheme == "https"
    port = server.port or (443 if secure else 80)
    tls = _tls_context(configuration) if secure else None
    common = {"tls": tls, "authority": server.netloc.rpartition("@")[2],
              "server_hostname": configuration.tls_server_name or server.hostname,
              "base_path": server.path.rstrip("/")}
    proxy = configuration.proxy
    if not proxy or should_bypass_proxies(configuration.host, configuration.no_proxy or ""):
        return Route(server.hostname, port, **common)
    via = urlsplit(proxy)
    if via.scheme != "http" or not via.hostname:
        shown = f"{via.scheme}://{via.netloc.rpartition('@')[2]}"   # no password in errors
        raise ClusterError(
            f"the kubeconfig's proxy-url {shown}: the cluster view reads through an "
            "http:// proxy only (HTTP CONNECT), not a SOCKS or https:// one")
    return Route(via.hostname, via.port or 80, tunnel=secure, absolute=not secure,
                 proxy_headers=tuple(dict(configuration.proxy_headers or {}).items()), **common)


def _tls_context(configuration: Any) -> ssl.SSLContext:
    """As the kubernetes client verifies the server: the kubeconfig's CA (or
    the system's), its client certificate, insecure-skip-tls-verify."""
    try:
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert,
                                             cadata=getattr(configuration, "ca_cert_data", None))
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    except (OSError, ssl.SSLError) as error:
        raise ClusterError(f"cannot use the kubeconfig's certificates: {error}") from error
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Response:
    status: int
    reason: str
    body: bytes
    reusable: bool                # the connection may carry the next request


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: a request at a time, its response parsed as
    the bytes arrive (status line and headers, then a Content-Length body,
    chunks, or everything up to the end of the connection)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._answer: asyncio.Future[Response] | None = None
        self._head: tuple[int, str, bool] | None = None    # status, reason, keep-alive
        self._length = -1          # body bytes awaited; -1 chunked, -2 until closed
        self._chunks = bytearray()
        self._body_only = True     # False: a CONNECT's answer, which has no body

    # --- the protocol's callbacks --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            if self._length == -2 and len(self._buffer) > MAX_BODY:
                raise ValueError(f"a body past {MAX_BODY} bytes")
            self._parse()
        except ValueError as error:
            self._fail(ReadError(f"the API server's answer is not HTTP/1.1: {error}"))

    def eof_received(self) -> bool:
        if self._answer is not None and self._head is not None and self._length == -2:
            self._finish(bytes(self._buffer), reusable=False)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and self._head is not None and self._length == -2:
            self._finish(bytes(self._buffer), reusable=False)
        unanswered = self._head is None and not self._buffer
        self._fail((ClosedUnanswered if unanswered else ReadError)(
            f"the connection to the API server closed: {exc or 'EOF'}"))

    # --- a request -----------------------------------------------------------------------
    def send(self, request: bytes, *, body: bool = True) -> asyncio.Future[Response]:
        assert self.transport is not None and self._answer is None
        self._answer = asyncio.get_running_loop().create_future()
        self._body_only, self._head, self._length = body, None, -1
        self.transport.write(request)
        return self._answer

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: ReadError) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)
        self.abort()

    def _finish(self, body: bytes, reusable: bool) -> None:
        answer, self._answer = self._answer, None
        assert self._head is not None
        status, reason, keep_alive = self._head
        if answer is not None and not answer.done():
            answer.set_result(Response(status, reason, body, reusable and keep_alive))

    def _parse(self) -> None:
        if self._answer is None:
            if self._buffer:
                raise ValueError("bytes before any request")
            return
        if self._head is None and not self._parse_head():
            return
        if self._length >= 0:
            if len(self._buffer) >= self._length:
                body = bytes(self._buffer[:self._length])
                del self._buffer[:self._length]
                self._finish(body, reusable=not self._buffer)
        elif self._length == -1:
            self._parse_chunks()

    def _parse_head(self) -> bool:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise ValueError(f"no end of its headers within {MAX_HEAD} bytes")
                return False
            lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            del self._buffer[:end + 4]
            version, _, rest = lines[0].partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise ValueError(f"status line {lines[0][:80]!r}")
            status = int(code)
            if 100 <= status < 200:
                continue               # an interim answer; the real one follows
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if not colon:
                    raise ValueError(f"header line {line[:80]!r}")
                headers[name.strip().lower()] = value.strip()
            keep_alive = version == "HTTP/1.1" and "close" not in \
                headers.get("connection", "").lower()
            self._head = (status, reason, keep_alive)
            if headers.get("content-encoding", "identity").lower() != "identity":
                raise ValueError(f"a body in {headers['content-encoding']}, asked for none")
            if not self._body_only or status in (204, 304):
                self._length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self._length, self._chunks = -1, bytearray()
            elif "content-length" in headers:
                self._length = int(headers["content-length"])
                if not 0 <= self._length <= MAX_BODY:
                    raise ValueError(f"Content-Length {self._length}, more than {MAX_BODY}")
            else:
                self._length = -2       # the body ends with the connection
            return True

    def _parse_chunks(self) -> None:
        while True:
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self._buffer[:line_end]).split(b";")[0].strip() or b"x", 16)
            if not 0 <= size <= MAX_BODY - len(self._chunks):
                raise ValueError(f"a chunk of {size} bytes, past {MAX_BODY} in all")
            if size == 0:
                # The last chunk, then trailers (none expected) up to an empty line.
                trailers_end = self._buffer.find(b"\r\n\r\n", line_end)
                if trailers_end < 0:
                    return
                del self._buffer[:trailers_end + 4]
                self._finish(bytes(self._chunks), reusable=not self._buffer)
                return
            if len(self._buffer) < line_end + 2 + size + 2:
                return
            start = line_end + 2
            self._chunks += self._buffer[start:start + size]
            del self._buffer[:start + size + 2]


class ApiReader:
    """GETs through the API server from an event loop of its own; run() hands
    it a coroutine from another thread and waits for its result. A context
    manager: on exit, reads still going are cancelled and connections closed."""

    def __init__(self, cluster: Cluster, connections: int) -> None:
        self.cluster = cluster
        self._route = route(cluster.client.configuration)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="api-reader")
        self._gate = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()     # every connection, idle or busy
        self._headers = b""

    def __enter__(self) -> ApiReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the reader's loop with the credentials as they
        are now (the kubeconfig's refresh hook runs here, once per call: a
        token that expires is renewed before the reads that need it)."""
        self._headers = self._request_headers()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def get(self, path: str, *, what: str, timeout: float) -> bytes:
        """The body of GET `path` (with its query), within `timeout` seconds of
        its turn: ReadError naming `what` when there is no 2xx answer."""
        async with self._gate:
            connection: _Connection | None = None
            try:
                async with asyncio.timeout(timeout):
                    connection, kept = await self._connection()
                    try:
                        response = await connection.send(self._request(path))
                    except ClosedUnanswered:
                        if not kept:
                            raise
                        self._drop(connection)
                        connection, _ = await self._connection(fresh=True)
                        response = await connection.send(self._request(path))
            except TimeoutError:
                self._drop(connection)
                raise ReadError(f"cannot {what} ({self.cluster.where}): no answer within "
                                f"{timeout:g} s") from None
            except (OSError, ssl.SSLError) as error:
                self._drop(connection)
                raise ReadError(f"cannot reach the API server ({self.cluster.where}): "
                                f"{error}") from error
            except ReadError as error:
                self._drop(connection)
                raise ReadError(f"cannot {what} ({self.cluster.where}): {error}") from error
            if response.reusable and not connection.closed:
                self._idle.append(connection)
            else:
                self._drop(connection)
        if not 200 <= response.status <= 299:
            message = api_message(response.status, response.reason,
                                  response.body.decode("utf-8", errors="replace"),
                                  what, self.cluster.where)
            raise ReadError(message, response.status)
        return response.body

    def close(self) -> None:
        if not self._thread.is_alive():
            self._loop.close()
            return
        asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(CLOSE_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_TIMEOUT)
        self._loop.close()

    async def _shut(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in list(self._open):
            self._drop(connection)
        self._idle.clear()

    def _drop(self, connection: _Connection | None) -> None:
        if connection is not None:
            connection.abort()
            self._open.discard(connection)

    # --- connections ---------------------------------------------------------------------
    async def _connection(self, fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection for one request, and whether it was kept from an earlier one."""
        while self._idle and not fresh:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
            self._open.discard(connection)
        return await self._open_connection(), False

    async def _open_connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        way = self._route
        if not way.tunnel:
            _, connection = await loop.create_connection(
                _Connection, way.host, way.port, ssl=way.tls,
                server_hostname=way.server_hostname if way.tls else None)
            self._open.add(connection)
            return connection
        transport, connection = await loop.create_connection(_Connection, way.host, way.port)
        self._open.add(connection)
        try:
            answer = await connection.send(self._connect_request(), body=False)
            if answer.status != 200:
                raise ReadError(f"the proxy {way.host}:{way.port} refused to CONNECT to "
                                f"{way.authority}: {answer.status} {answer.reason}")
            assert way.tls is not None
            secured = await loop.start_tls(transport, connection, way.tls,
                                           server_hostname=way.server_hostname)
        except BaseException:
            self._drop(connection)
            raise
        assert isinstance(secured, asyncio.Transport)
        connection.transport = secured
        return connection

    def _connect_request(self) -> bytes:
        authority = self._route.authority if ":" in self._route.authority else \
            f"{self._route.authority}:443"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}",
                 *(f"{name}: {value}" for name, value in self._route.proxy_headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _request(self, path: str) -> bytes:
        way = self._route
        target = way.base_path + path
        if way.absolute:
            target = f"http://{way.authority}{target}"
        return (f"GET {target} HTTP/1.1\r\nHost: {way.authority}\r\n".encode("latin-1")
                + self._headers)

    def _request_headers(self) -> bytes:
        """The headers every request carries, from the credentials now."""
        way = self._route
        headers: Mapping[str, str] = {
            **self.cluster.auth_headers(), "Accept": "application/json, */*",
            "User-Agent": f"ig-metrics/{__version__}",
            **(dict(way.proxy_headers) if way.absolute else {})}
        text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return (text + "\r\n").encode("latin-1")
