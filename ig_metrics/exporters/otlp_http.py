"""The otlp-http exporter: OTLP as protobuf over HTTP through the SDK's
OTLPMetricExporter, posting to the endpoint URL (/v1/metrics when it has no path)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http import metric_exporter as sdk_http_exporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

from ig_metrics.config.addresses import parse_http_endpoint
from ig_metrics.exporters.otlp_common import (
    MAX_POINTS_PER_REQUEST, OtlpExporter, read_tls_file,
)


class ExportSession(requests.Session):
    """The requests session of one otlp-http exporter. It remembers why the last
    request failed (the SDK logs the cause only when it retries), and with a
    tls.ca_file keeps that file as the only CA: plain requests lets
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE replace a session's own `verify`."""

    def __init__(self, *, pin_verify: bool) -> None:
        super().__init__()
        self.pin_verify = pin_verify
        self.last_problem = ""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[override]
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.pin_verify:
            settings["verify"] = self.verify
        return settings

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException as error:
            self.last_problem = f"{method} {url}: {error}"
            raise
        if not 200 <= response.status_code < 400:     # what the SDK counts as success
            self.last_problem = (f"{method} {url}: HTTP {response.status_code} "
                                 f"{response.reason}")
        return response


class OtlpHttpExporter(OtlpExporter):
    """Posts to a collector's OTLP/HTTP receiver; https:// URLs use TLS."""

    sdk_logger_names = (sdk_http_exporter.__name__,)

    def __init__(self, config) -> None:
        super().__init__(config)
        endpoint = parse_http_endpoint(self.settings.endpoint)
        self.url = endpoint.url
        self._session: ExportSession | None = None
        if "endpoint" in config.template.secrets:
            self.add_secret(self.settings.endpoint, self.url)
        self.add_secret(urlsplit(self.url).password or "")

    @property
    def target(self) -> str:
        return self.shown("endpoint", self.url)

    def before_export(self) -> None:
        if self._session is not None:
            self._session.last_problem = ""

    def failure_reason(self, sdk_records: list[logging.LogRecord]) -> str:
        problem = self._session.last_problem if self._session is not None else ""
        return problem or super().failure_reason(sdk_records)

    def create_sdk_exporter(self) -> OTLPMetricExporter:
        tls = self.settings.tls
        for setting, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file),
                              ("key_file", tls.key_file)):
            read_tls_file(self, setting, path)   # fail at start, not at every export
        compression = (Compression.Gzip if self.settings.compression == "gzip"
                       else Compression.NoCompression)
        self._session = ExportSession(pin_verify=tls.ca_file is not None)
        # Without ca_file the system's CAs are used, or the
        # OTEL_EXPORTER_OTLP_*CERTIFICATE file when it is set.
        return OTLPMetricExporter(
            endpoint=self.url,
            certificate_file=str(tls.ca_file) if tls.ca_file else None,
            client_certificate_file=str(tls.cert_file) if tls.cert_file else None,
            client_key_file=str(tls.key_file) if tls.key_file else None,
            headers=dict(self.settings.headers),
            timeout=self.settings.timeout,
            compression=compression,
            session=self._session,
            max_export_batch_size=MAX_POINTS_PER_REQUEST,
        )
