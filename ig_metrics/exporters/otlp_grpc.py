"""The otlp-grpc exporter: OTLP over gRPC through the SDK's OTLPMetricExporter,
with the endpoint, TLS, headers, compression and timeout of its settings."""

from __future__ import annotations

import grpc
from opentelemetry.exporter.otlp.proto.grpc import exporter as sdk_grpc_exporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

from ig_metrics.config.addresses import HostPort, parse_grpc_endpoint
from ig_metrics.exporters.otlp_common import (
    MAX_POINTS_PER_REQUEST, OtlpExporter, read_tls_file,
)


class OtlpGrpcExporter(OtlpExporter):
    """Pushes to a collector's gRPC MetricsService. host:port means TLS unless
    `insecure`; http:// means plaintext and https:// TLS, whatever `insecure` says."""

    sdk_logger_names = (sdk_grpc_exporter.__name__,)

    def __init__(self, config) -> None:
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

    def create_sdk_exporter(self) -> OTLPMetricExporter:
        credentials = None
        tls = self.settings.tls
        if not self.insecure and (tls.ca_file or tls.cert_file):
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read_tls_file(self, "ca_file", tls.ca_file),
                private_key=read_tls_file(self, "key_file", tls.key_file),
                certificate_chain=read_tls_file(self, "cert_file", tls.cert_file),
            )
        compression = (grpc.Compression.Gzip if self.settings.compression == "gzip"
                       else grpc.Compression.NoCompression)
        # Without credentials and without `insecure`, the SDK uses the system's
        # CAs, or the OTEL_EXPORTER_OTLP_*CERTIFICATE files when they are set.
        return OTLPMetricExporter(
            endpoint=self.channel_target,
            insecure=self.insecure,
            credentials=credentials,
            headers=self.settings.headers,
            timeout=self.settings.timeout,
            compression=compression,
            max_export_batch_size=MAX_POINTS_PER_REQUEST,
        )
