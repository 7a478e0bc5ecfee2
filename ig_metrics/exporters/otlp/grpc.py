"""The otlp-grpc exporter: OTLP over one long-lived gRPC channel per exporter
(keepalive, reconnect backoff tied to `retry`), with the endpoint, TLS, headers
and compression of its settings. Status codes decide what is retried."""

from __future__ import annotations

import grpc
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)

from ig_metrics import __version__
from ig_metrics.config.addresses import HostPort, parse_grpc_endpoint
from ig_metrics.config.fieldkinds import GRPC_ENDPOINT
from ig_metrics.config.model import ResolvedExporter
from ig_metrics.exporters.base import ExportFailure
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.exporters.delivery.transport import Delivery, Transport
from ig_metrics.exporters.otlp.common import OtlpExporter, otlp_type, read_tls_file

EXPORT_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
# What the OTLP specification says may succeed if sent again (RESOURCE_EXHAUSTED
# too: a collector under memory pressure says so).
RETRYABLE = frozenset({
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})
# What to tell a person about a refusal that retrying cannot cure.
PERMANENT_HINTS = {
    grpc.StatusCode.UNAUTHENTICATED: "check the credentials in headers",
    grpc.StatusCode.PERMISSION_DENIED: "check the credentials in headers",
    grpc.StatusCode.UNIMPLEMENTED: "the endpoint serves no OTLP metrics: check endpoint",
    grpc.StatusCode.INVALID_ARGUMENT: "the collector refused the data",
}
# Codes that refuse what a request holds, not who sends it or where: the batch is
# dropped and the next one may still be taken.
BATCH_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT})
# Pings only while an export is under way (a dead peer is found before the
# timeout of a long export): most collectors (grpc-go's defaults) close a
# connection pinged more often than every 5 minutes without a call.
KEEPALIVE_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
)


def channel_options(retry: RetrySettings) -> list[tuple[str, object]]:
    """Keepalive, and reconnect attempts no further apart than our own retries
    (gRPC's default backoff reaches 120 s: the collector would be back long
    before the channel tried again)."""
    return [*KEEPALIVE_OPTIONS,
            ("grpc.initial_reconnect_backoff_ms", max(100, int(retry.initial * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(100, int(retry.max * 1000))),
            ("grpc.enable_retries", 0),          # retries are ours, counted and logged
            # A channel of its own, not one shared through gRPC's global pool:
            # a fresh channel after an outage must really connect again.
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.primary_user_agent", f"ig-metrics/{__version__}")]


class GrpcTransport(Transport):
    """One channel, kept for as long as it works: every export of the exporter
    goes over its one connection. After an UNAVAILABLE (the collector went
    away) the next attempt gets a fresh channel: the old one would fail at once
    until gRPC's own reconnect timer fires, and our retry schedule, not that
    timer, decides when to try again."""

    def __init__(self, target: str, *, credentials: grpc.ChannelCredentials | None,
                 headers: tuple[tuple[str, str], ...], compression: grpc.Compression,
                 retry: RetrySettings) -> None:
        self._target = target
        self._credentials = credentials
        self._compression = compression
        self._options = channel_options(retry)
        self._metadata = headers
        self._broken = False
        self._channel = self._connect()

    def _connect(self) -> grpc.Channel:
        channel = (grpc.secure_channel(self._target, self._credentials, self._options,
                                       self._compression)
                   if self._credentials is not None else
                   grpc.insecure_channel(self._target, self._options, self._compression))
        self._export: grpc.UnaryUnaryMultiCallable[bytes, ExportMetricsServiceResponse] = \
            channel.unary_unary(
            EXPORT_METHOD, request_serializer=None,     # requests arrive encoded
            response_deserializer=ExportMetricsServiceResponse.FromString)
        return channel

    def send(self, request: bytes, timeout: float) -> Delivery:
        if self._broken:
            old, self._channel = self._channel, self._connect()
            old.close()
            self._broken = False
        try:
            response = self._export(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            self._broken = error.code() is grpc.StatusCode.UNAVAILABLE
            return Delivery(failure=_failure(error))
        partial = response.partial_success
        return Delivery(rejected_points=partial.rejected_data_points,
                        rejected_message=partial.error_message)

    def close(self) -> None:
        self._channel.close()


def _failure(error: grpc.RpcError) -> ExportFailure:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    retry_after = None
    # (key, value) tuples, which grpc's stubs type as objects with .key and .value
    trailing: tuple[tuple[str, bytes], ...] = (
        error.trailing_metadata() or ()  # type: ignore[assignment]
        if hasattr(error, "trailing_metadata") else ())
    for key, value in trailing:
        if key == "google.rpc.retryinfo-bin":
            info = RetryInfo.FromString(value)
            retry_after = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    message = f"gRPC {code.name}: {details or 'no details'}"
    if code not in RETRYABLE:
        hint = PERMANENT_HINTS.get(code, "the collector refused the export")
        return ExportFailure(f"{message} — {hint}; not retried", code.name.lower(),
                             retryable=False, batch_refused=code in BATCH_CODES)
    return ExportFailure(message, code.name.lower(), retryable=True, retry_after=retry_after)


class OtlpGrpcExporter(OtlpExporter):
    """Pushes to a collector's gRPC MetricsService. host:port means TLS unless
    `insecure`; http:// means plaintext and https:// TLS, whatever `insecure` says."""

    def __init__(self, config: ResolvedExporter) -> None:
        super().__init__(config)
        endpoint = parse_grpc_endpoint(self.settings.endpoint)
        if endpoint.port is None:          # config refuses this; a direct caller may not
            raise ValueError(f"exporter {self.name}: the endpoint has no port")
        self.channel_target = str(HostPort(endpoint.host, endpoint.port))
        self.insecure = (endpoint.scheme == "http" if endpoint.scheme
                         else self.settings.insecure)
        if "endpoint" in config.template.secrets:
            self.add_secret(self.settings.endpoint, self.channel_target)

    @property
    def target(self) -> str:
        return self.shown("endpoint", self.settings.endpoint)

    def create_transport(self) -> GrpcTransport:
        credentials = None
        if not self.insecure:
            tls = self.settings.tls
            # Without ca_file, gRPC's own roots (or $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read_tls_file(self, "ca_file", tls.ca_file),
                private_key=read_tls_file(self, "key_file", tls.key_file),
                certificate_chain=read_tls_file(self, "cert_file", tls.cert_file),
            )
        compression = (grpc.Compression.Gzip if self.settings.compression == "gzip"
                       else grpc.Compression.NoCompression)
        return GrpcTransport(self.channel_target, credentials=credentials,
                             headers=self.settings.headers, compression=compression,
                             retry=self.settings.retry)


TYPE = otlp_type(
    "otlp-grpc", "Pushes OTLP over gRPC to a collector.", GRPC_ENDPOINT,
    "The collector: host:port, [ipv6]:port or http(s)://host:port. "
    "host:port uses TLS unless insecure: true.",
    "otel-collector.observability.svc:4317", OtlpGrpcExporter, grpc=True)
