"""Receivers and real peers for exporter tests: OTLP gRPC and HTTP receivers
written here, the real Prometheus server and promtool, the real rotel-agent
collector, TLS material made with openssl, helpers that flatten what an OTLP
receiver got into {(metric, attributes): value}, and synthetic snapshots and
exporter configs to send."""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as service_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from ig_metrics.config.model import ExporterTemplate, ResolvedExporter
from ig_metrics.exporters.console import ConsoleSettings
from ig_metrics.exporters.otlp.common import OtlpSettings
from ig_metrics.exporters.prometheus.exporter import PrometheusSettings
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
HANG_LIMIT = 60.0        # a hanging receiver answers after this long at the latest

# What a receiver does with a request: answer; refuse for now (gRPC UNAVAILABLE,
# HTTP 503); never answer; answer after `delay`; throttle (RESOURCE_EXHAUSTED
# with RetryInfo, HTTP 429 with Retry-After, both `retry_after` seconds); refuse
# for good (UNAUTHENTICATED, HTTP 401).
OK, UNAVAILABLE, HANG, SLOW = "ok", "unavailable", "hang", "slow"
THROTTLE, UNAUTHENTICATED = "throttle", "unauthenticated"


def require_tool(path: Path | str | None, what: str) -> Path:
    """`path` if it exists; else skip the test, or fail it under CI=true, where
    every peer must be installed (a skipped peer would hide a missing setup step)."""
    import pytest  # noqa: PLC0415 (only tests call this)
    if path is not None and Path(path).exists():
        return Path(path)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing; the setup script must install it")
    pytest.skip(f"{what} is not installed")


def clear_otel_environment(monkeypatch) -> None:
    """The SDK reads OTEL_EXPORTER_OTLP_* and requests reads *_proxy: neither may
    leak from the machine into what a test checks."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


# --- what a receiver got ----------------------------------------------------------
@dataclass(frozen=True)
class Received:
    """One ExportMetricsServiceRequest as it arrived."""

    request: service_pb2.ExportMetricsServiceRequest
    headers: dict[str, str]           # HTTP headers or gRPC metadata, names lowercased
    path: str = ""                    # HTTP only
    body_size: int = 0                # HTTP only: bytes on the wire
    content_encoding: str = ""        # HTTP only
    arrived: float = field(default_factory=time.monotonic)
    peer: str = ""                    # the client's address and port: one per connection


@dataclass(frozen=True)
class HistogramSeen:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int
    has_min: bool
    has_max: bool


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes_of(key_values) -> frozenset[tuple[str, Any]]:
    return frozenset((kv.key, any_value(kv.value)) for kv in key_values)


def iter_points(received: list[Received]):
    """(resource attributes, metric, point) for every data point received, in order."""
    for item in received:
        for resource_metrics in item.request.resource_metrics:
            resource = dict(attributes_of(resource_metrics.resource.attributes))
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        yield resource, metric, point


def point_value(metric, point) -> Any:
    if metric.WhichOneof("data") == "histogram":
        return HistogramSeen(tuple(point.explicit_bounds), tuple(point.bucket_counts),
                             point.sum, point.count, point.HasField("min"),
                             point.HasField("max"))
    return getattr(point, point.WhichOneof("value"))


def flatten(received: list[Received]) -> dict[tuple[str, frozenset], Any]:
    """{(metric name, frozenset of attributes): value}, the last value winning."""
    return {(metric.name, attributes_of(point.attributes)): point_value(metric, point)
            for _, metric, point in iter_points(received)}


# --- OTLP gRPC ----------------------------------------------------------------------
class OtlpGrpcReceiver:
    """Stands in for an OpenTelemetry collector's OTLP/gRPC receiver: a real grpcio
    server implementing MetricsService on 127.0.0.1, recording every request.
    `behaviour` is OK, UNAVAILABLE (answers that status, quoting the request's
    headers when `echo_headers`, as a careless collector might) or HANG (never
    answers until closed); `tls` = (cert, key, client CA or None) serves TLS
    (mTLS with a CA). Its next `refuse` requests are refused for their data
    (INVALID_ARGUMENT, as a collector refuses a malformed request) and kept in
    `refused`."""

    def __init__(self, *, behaviour: str = OK, host: str = "127.0.0.1",
                 tls: tuple[Path, Path, Path | None] | None = None,
                 echo_headers: bool = False, port: int = 0, delay: float = 0.0,
                 retry_after: float = 1.0) -> None:
        self.behaviour = behaviour
        self.host = host
        self.echo_headers = echo_headers
        self.delay = delay
        self.retry_after = retry_after
        self.attempts = 0                 # requests that reached the servicer, answered or not
        self.received: list[Received] = []
        self.refuse = 0
        self.refused: list[Received] = []
        self._arrived = threading.Condition()
        self._release = threading.Event()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        service_grpc.add_MetricsServiceServicer_to_server(_Servicer(self), self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if tls is None:
            self.port = self._server.add_insecure_port(address)
        else:
            cert, key, client_ca = tls
            credentials = grpc.ssl_server_credentials(
                [(key.read_bytes(), cert.read_bytes())],
                root_certificates=client_ca.read_bytes() if client_ca else None,
                require_client_auth=client_ca is not None)
            self.port = self._server.add_secure_port(address, credentials)
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def record(self, request, context) -> service_pb2.ExportMetricsServiceResponse:
        metadata = {key.lower(): value for key, value in context.invocation_metadata()}
        with self._arrived:
            self.attempts += 1
        if self.behaviour == HANG:
            self._release.wait(HANG_LIMIT)
        if self.behaviour == SLOW:
            self._release.wait(self.delay)
        if self.behaviour == UNAVAILABLE:
            details = "test receiver is unavailable"
            if self.echo_headers:
                details += f" for {metadata}"
            context.abort(grpc.StatusCode.UNAVAILABLE, details)
        if self.behaviour == THROTTLE:
            info = RetryInfo(retry_delay=Duration(seconds=int(self.retry_after),
                                                  nanos=int(self.retry_after % 1 * 1e9)))
            context.set_trailing_metadata((("google.rpc.retryinfo-bin",
                                            info.SerializeToString()),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "test receiver is throttling")
        if self.behaviour == UNAUTHENTICATED:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "test receiver wants a token")
        with self._arrived:
            refusing = self.refuse > 0
            if refusing:
                self.refuse -= 1
                self.refused.append(Received(request, metadata, peer=context.peer()))
        if refusing:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "test receiver refuses this data")
        with self._arrived:
            self.received.append(Received(request, metadata, peer=context.peer()))
            self._arrived.notify_all()
        return service_pb2.ExportMetricsServiceResponse()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} requests arrived, not {count}")
            return list(self.received)

    def close(self) -> None:
        self._release.set()
        self._server.stop(grace=0).wait(5)

    def __enter__(self) -> OtlpGrpcReceiver:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Servicer(service_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpGrpcReceiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 (the gRPC method's name)
        return self.receiver.record(request, context)


# --- OTLP HTTP ----------------------------------------------------------------------
class OtlpHttpReceiver:
    """Stands in for a collector's OTLP/HTTP receiver: a ThreadingHTTPServer taking
    protobuf POSTs on /v1/metrics (gzip Content-Encoding understood), answering an
    ExportMetricsServiceResponse; same `behaviour`, `tls` and `refuse` (HTTP 400
    here) as the gRPC one."""

    def __init__(self, *, behaviour: str = OK,
                 tls: tuple[Path, Path, Path | None] | None = None,
                 path: str = "/v1/metrics", echo_headers: bool = False, port: int = 0,
                 delay: float = 0.0, retry_after: float = 1.0) -> None:
        self.behaviour = behaviour
        self.echo_headers = echo_headers
        self.metrics_path = path
        self.delay = delay
        self.retry_after = retry_after
        self.attempts = 0
        self.received: list[Received] = []
        self.refuse = 0
        self.refused: list[Received] = []
        self.connections: set[socket.socket] = set()      # open keep-alive connections
        self._arrived = threading.Condition()
        self._release = threading.Event()
        self._server = _RestartableServer(("127.0.0.1", port), _handler_for(self))
        if tls is not None:
            cert, key, client_ca = tls
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            if client_ca is not None:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(client_ca)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, scheme: str = "http", path: str | None = None) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{self.metrics_path if path is None else path}"

    def hold(self) -> None:
        """What HANG does: wait until the receiver closes (or HANG_LIMIT)."""
        self._release.wait(HANG_LIMIT)

    def record(self, item: Received) -> None:
        with self._arrived:
            self.received.append(item)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} requests arrived, not {count}")
            return list(self.received)

    def close(self) -> None:
        """Stop as a killed collector would: listening socket and every
        keep-alive connection closed."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        with self._arrived:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass      # already closed by its handler

    def __enter__(self) -> OtlpHttpReceiver:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _RestartableServer(ThreadingHTTPServer):
    """Binds a port its killed predecessor just left (SO_REUSEADDR)."""

    allow_reuse_address = True
    daemon_threads = True


def _handler_for(receiver: OtlpHttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with receiver._arrived:
                receiver.connections.add(self.connection)

        def finish(self) -> None:
            with receiver._arrived:
                receiver.connections.discard(self.connection)
            super().finish()

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver._arrived:
                receiver.attempts += 1
            if receiver.behaviour == HANG:
                receiver.hold()
            if receiver.behaviour == SLOW:
                receiver._release.wait(receiver.delay)
            if receiver.behaviour == UNAVAILABLE:
                reason = "Unavailable"
                if receiver.echo_headers:
                    reason += f" for {dict(self.headers.items())}"
                self._answer(503, b"unavailable", "text/plain", reason)
                return
            if receiver.behaviour == THROTTLE:
                self._answer(429, b"slow down", "text/plain",
                             extra={"Retry-After": f"{receiver.retry_after:.0f}"})
                return
            if receiver.behaviour == UNAUTHENTICATED:
                self._answer(401, b"a token is needed", "text/plain")
                return
            if self.path != receiver.metrics_path:
                self._answer(404, b"not found", "text/plain")
                return
            encoding = self.headers.get("Content-Encoding", "")
            payload = gzip.decompress(body) if encoding == "gzip" else body
            request = service_pb2.ExportMetricsServiceRequest.FromString(payload)
            received = Received(
                request, {key.lower(): value for key, value in self.headers.items()},
                path=self.path, body_size=len(body), content_encoding=encoding,
                peer=f"{self.client_address[0]}:{self.client_address[1]}")
            with receiver._arrived:
                refusing = receiver.refuse > 0
                if refusing:
                    receiver.refuse -= 1
                    receiver.refused.append(received)
            if refusing:
                self._answer(400, b"test receiver refuses this data", "text/plain")
                return
            receiver.record(received)
            self._answer(200, service_pb2.ExportMetricsServiceResponse().SerializeToString(),
                         "application/x-protobuf")

        def _answer(self, status: int, body: bytes, content_type: str,
                    reason: str | None = None, extra: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status, reason)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass    # the exporter gave up waiting (HANG): nobody is left to answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows failures, not every request."""

    return Handler


# --- TLS material -------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path, name: str = "test") -> TlsFiles:
    """A CA, a server certificate for localhost/127.0.0.1/::1 and a client
    certificate, all signed by that CA, made with the openssl command."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", f"/CN={name} CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    server = _signed(directory, f"{name}-server", "localhost", ca, ca_key,
                     "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                     "extendedKeyUsage=serverAuth\n")
    client = _signed(directory, f"{name}-client", "ig-metrics", ca, ca_key,
                     "extendedKeyUsage=clientAuth\n")
    return TlsFiles(ca, server[0], server[1], client[0], client[1])


def _signed(directory: Path, stem: str, common_name: str, ca: Path, ca_key: Path,
            extensions: str) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{stem}.pem", directory / f"{stem}.key",
                      directory / f"{stem}.csr")
    extfile = directory / f"{stem}.ext"
    extfile.write_text("basicConstraints=CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n" + extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={common_name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", extfile)
    return cert, key


def _openssl(*args: Any) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


# --- Prometheus ---------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def scrape(url: str, accept: str = "text/plain", timeout: float = 10,
           **headers: str) -> tuple[str, str]:
    """(body, Content-Type) of one GET, without any proxy from the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Accept": accept, **headers})
    with opener.open(request, timeout=timeout) as response:
        return response.read().decode(), response.headers.get("Content-Type", "")


def promtool_check(text: str) -> tuple[int, str]:
    """`promtool check metrics` (the real one) on an exposition: (exit code, output)."""
    require_tool(PROMTOOL, "promtool (Debian package `prometheus`)")
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                          capture_output=True, timeout=60)
    return done.returncode, (done.stdout + done.stderr).strip()


class _ServerProcess:
    """A real server binary run for a test: started, awaited, stopped."""

    name = "server"
    _process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0):
        raise NotImplementedError

    def output(self) -> str:
        raise NotImplementedError

    def _wait_until(self, ready, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()}")
            if ready():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.output()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class PrometheusServer(_ServerProcess):
    """The real Prometheus server (Debian's /usr/bin/prometheus), scraping
    `targets` every second into a temporary TSDB, queried with PromQL."""

    name = "prometheus"

    def __init__(self, targets: list[str], workdir: Path, *, flags: tuple[str, ...] = (),
                 rule_files: tuple[Path, ...] = (),
                 users: dict[str, tuple[str, str]] | None = None, tls: TlsFiles | None = None,
                 **scrape: Any) -> None:
        self.targets = targets
        self.workdir = workdir
        self.rule_files = rule_files  # evaluated every second, as the targets are scraped
        # e.g. --enable-feature=native-histograms (then it asks for the protobuf
        # exposition), --web.enable-remote-write-receiver (/api/v1/write)
        self.flags = flags
        # name -> (password, its bcrypt hash): Prometheus' own basic_auth_users, on
        # every endpoint (queries and remote write); the tests' queries use the first.
        self.users = users or {}
        # Serve HTTPS with tls' server certificate, and require a client certificate
        # signed by its CA (mutual TLS) on every endpoint.
        self.tls = tls
        self.scrape = scrape        # more of the scrape config: scheme, tls_config, basic_auth
        self.port = 0
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [{"job_name": "ig-metrics",
                                "static_configs": [{"targets": self.targets}],
                                **self.scrape}] if self.targets else [],
        }))
        web_config: dict[str, Any] = {}
        if self.users:
            web_config["basic_auth_users"] = {name: hashed
                                              for name, (_, hashed) in self.users.items()}
        if self.tls is not None:
            web_config["tls_server_config"] = {
                "cert_file": str(self.tls.server_cert), "key_file": str(self.tls.server_key),
                "client_ca_file": str(self.tls.ca),
                "client_auth_type": "RequireAndVerifyClientCert"}
        web = []
        if web_config:
            (self.workdir / "web.yml").write_text(json.dumps(web_config))
            web = [f"--web.config.file={self.workdir / 'web.yml'}"]
        # Started again after stop(): the same port and TSDB, as a restarted server.
        self.port = self.port or free_port()
        log = open(self.workdir / "prometheus.log", "ab")
        self._process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", *web,
             *self.flags],
            stdout=log, stderr=subprocess.STDOUT)
        return self._wait_until(self._ready, timeout)

    def _get(self, path: str) -> str:
        headers = {}
        if self.users:
            name, (password, _) = next(iter(self.users.items()))
            token = base64.b64encode(f"{name}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if self.tls is None:
            return scrape(f"http://127.0.0.1:{self.port}{path}", **headers)[0]
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        request = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}",
                                         headers=headers)
        with opener.open(request, timeout=10) as response:
            return response.read().decode()

    def _ready(self) -> bool:
        try:
            self._get("/-/ready")
            return True
        except OSError:
            return False

    def output(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]

    def query(self, promql: str) -> list[dict]:
        query = urllib.parse.urlencode({"query": promql})
        answer = json.loads(self._get(f"/api/v1/query?{query}"))
        if answer["status"] != "success":
            raise RuntimeError(f"query {promql!r}: {answer}")
        return answer["data"]["result"]

    def api(self, path: str, **parameters: Any) -> Any:
        """The data of one GET of the HTTP API; RuntimeError with Prometheus'
        message for an error (a query that does not parse, for one)."""
        query = urllib.parse.urlencode(parameters)
        try:
            # A loaded machine can make a range query over many series slow.
            body, _ = scrape(f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}", timeout=60)
        except urllib.error.HTTPError as error:
            body = error.read().decode()
        answer = json.loads(body)
        if answer["status"] != "success":
            raise RuntimeError(f"{path} {parameters}: {answer.get('error', answer)}")
        return answer["data"]

    def wait_for(self, promql: str, timeout: float = 30.0) -> list[dict]:
        """The first non-empty result of `promql`, polled until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)


# --- rotel-agent --------------------------------------------------------------------
def rotel_agent_path() -> Path | None:
    """The rotel-agent binary shipped by the PyPI package `rotel`, if installed."""
    try:
        import rotel  # noqa: PLC0415 (optional test dependency)
    except ImportError:
        return None
    path = Path(rotel.__file__).parent / "rotel-agent"
    return path if path.exists() else None


class RotelAgent(_ServerProcess):
    """The real rotel-agent, an independent OTLP collector written in Rust:
    receives OTLP gRPC and HTTP on 127.0.0.1, prints what it gets (debug log) and
    forwards it over OTLP/gRPC to `forward_to` (e.g. one of the receivers above)."""

    name = "rotel-agent"

    def __init__(self, binary: Path, workdir: Path, forward_to: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.forward_to = forward_to
        self.grpc_port = self.http_port = 0
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> RotelAgent:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.grpc_port, self.http_port = free_port(), free_port()
        output = open(self.workdir / "rotel.out", "wb")
        self._process = subprocess.Popen(
            [str(self.binary), "start",
             "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
             "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
             "--pid-file", str(self.workdir / "rotel.pid"),
             "--log-file", str(self.workdir / "rotel.log"),
             "--debug-log", "metrics", "--debug-log-verbosity", "detailed",
             "--batch-timeout", "100ms",
             "--exporter", "otlp", "--otlp-exporter-protocol", "grpc",
             "--otlp-exporter-endpoint", self.forward_to],
            stdout=output, stderr=subprocess.STDOUT,
            env={key: value for key, value in os.environ.items()
                 if not key.lower().endswith("_proxy")})
        return self._wait_until(
            lambda: all(_accepts(port) for port in (self.grpc_port, self.http_port)), timeout)

    def output(self) -> str:
        return (self.workdir / "rotel.out").read_text(errors="replace")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- synthetic snapshots and exporter configs -------------------------------------
# Built by hand in the tests, as the sampler would: no BPF needed.

START_NS = 1_700_000_000_000_000_000
# bcc's log2 slots in microseconds, exported in seconds: slot k holds [2^(k-1), 2^k - 1] us.
LOG2_US_BOUNDS = tuple((2 ** k - 1) / 1e6 for k in range(0, 12))
RESOURCE = (("service.name", "ig-metrics"), ("host.name", "node-1"),
            ("ig_metrics.gadget", "tcp"))


def exporter_config(name: str, type_: str, settings, *, interval: float = 10.0,
                    secrets: frozenset[str] = frozenset()) -> ResolvedExporter:
    template = ExporterTemplate(name=name, type=type_, settings=settings, interval=interval,
                                file="profiles/test.yaml", line=3, secrets=secrets)
    return ResolvedExporter(template=template, interval=interval)


def otlp_config(name: str, type_: str, endpoint: str, **settings: Any) -> ResolvedExporter:
    secrets = frozenset(f"headers.{key}" for key, _ in settings.get("headers", ()))
    return exporter_config(name, type_, OtlpSettings(endpoint=endpoint, **settings),
                           secrets=secrets)


def prometheus_config(name: str, host: str = "127.0.0.1", port: int = 0) -> ResolvedExporter:
    return exporter_config(name, "prometheus", PrometheusSettings(host=host, port=port))


def console_config(name: str, format_: str = "text") -> ResolvedExporter:
    return exporter_config(name, "console", ConsoleSettings(format=format_))


def tcp_like_snapshot(seq: int = 1, *, sent: int = 1_000_000, scale: int = 1,
                      time_ns: int | None = None, start_ns: int = START_NS) -> Snapshot:
    """Counters for two processes over IPv4 and IPv6, a histogram whose values sit
    on log2 bucket boundaries, and a gauge. `scale` multiplies every count."""
    peer4 = (("process.pid", 4242), ("process.command", "curl"),
             ("network.peer.address", "127.0.0.1"), ("server.port", 8080),
             ("network.type", "ipv4"))
    peer6 = (("process.pid", 4343), ("process.command", "nginx: worker"),
             ("network.peer.address", "2001:db8::1"), ("server.port", 443),
             ("network.type", "ipv6"))
    mapped = (("process.pid", 4343), ("process.command", "nginx: worker"),
              ("network.peer.address", "::ffff:10.0.0.7"), ("server.port", 443),
              ("network.type", "ipv6"))
    # 1 us, 3 us (on bounds 1e-06 and 3e-06), 4 us (first value of its slot) and
    # 2047 us (the last bound) land exactly in their slots; 5000 us in the overflow.
    counts = [0] * (len(LOG2_US_BOUNDS) + 1)
    for us in (1, 3, 3, 4, 2047, 5000):
        slot = next(i for i, bound in enumerate(LOG2_US_BOUNDS) if us / 1e6 <= bound) \
            if us / 1e6 <= LOG2_US_BOUNDS[-1] else len(LOG2_US_BOUNDS)
        counts[slot] += 1
    histogram = HistogramValue(counts=tuple(c * scale for c in counts),
                               sum=(1 + 3 + 3 + 4 + 2047 + 5000) / 1e6 * scale,
                               count=6 * scale)
    metrics = (
        MetricData(MetricInfo("tcp.sent", COUNTER, "By", "Bytes sent over TCP."), (
            Point(peer4, sent * scale, start_ns), Point(peer6, 2048 * scale, start_ns),
            Point(mapped, 7 * scale, start_ns))),
        MetricData(MetricInfo("tcp.connections.opened", COUNTER, "{connection}",
                              "Connections opened."), (
            Point(peer4, 3 * scale, start_ns), Point(peer6, 1 * scale, start_ns))),
        MetricData(MetricInfo("tcp.connect.duration", HISTOGRAM, "s",
                              "Time to establish a connection.", LOG2_US_BOUNDS),
                   (Point(peer4, histogram, start_ns),)),
        MetricData(MetricInfo("ig_metrics.series", GAUGE, "{series}",
                              "Series in this snapshot."), (Point((), 6, start_ns),)),
    )
    return Snapshot(seq=seq, time_ns=time_ns or START_NS + seq * 10_000_000_000,
                    gadget="tcp", resource=RESOURCE, metrics=metrics)


def expected_values(snapshot: Snapshot) -> dict[tuple[str, frozenset], Any]:
    """What `flatten` must give for an exact delivery of `snapshot`."""
    expected: dict[tuple[str, frozenset], Any] = {}
    for data in snapshot.metrics:
        for point in data.points:
            value = point.value
            if isinstance(value, HistogramValue):
                value = HistogramSeen(data.info.bounds, value.counts, value.sum, value.count,
                                      False, False)
            expected[(data.info.name, frozenset(point.attributes))] = value
    return expected
