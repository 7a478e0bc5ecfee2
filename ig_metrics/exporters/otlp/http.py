"""The otlp-http exporter: OTLP as protobuf POSTed over one keep-alive HTTP
session per exporter, to the endpoint URL (/v1/metrics when it has no path).
HTTP statuses decide what is retried; Retry-After is honoured."""

from __future__ import annotations

import email.utils
import gzip
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)

from ig_metrics import __version__
from ig_metrics.config.addresses import parse_http_endpoint
from ig_metrics.config.fieldkinds import HTTP_ENDPOINT
from ig_metrics.config.model import ResolvedExporter
from ig_metrics.exporters.base import Exporter, ExportFailure
from ig_metrics.exporters.delivery.transport import Delivery, Transport
from ig_metrics.exporters.otlp.common import OtlpExporter, TlsSettings, otlp_type, read_tls_file

PROTOBUF = "application/x-protobuf"
# The statuses the OTLP/HTTP specification says to retry; any other error is final.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
PERMANENT_HINTS = {
    400: "the collector refused the data",
    401: "check the credentials in headers",
    403: "check the credentials in headers",
    404: "nothing serves OTLP metrics at this URL: check endpoint",
    405: "nothing serves OTLP metrics at this URL: check endpoint",
    413: "the request is too large: lower limits.max_points_per_export",
}
# Statuses that refuse what a request holds, not who sends it or where (Bad
# Request, Content Too Large, Unprocessable Content): the batch is dropped and
# the next one may still be taken.
BATCH_STATUSES = frozenset({400, 413, 422})
MESSAGE_LIMIT = 200       # characters of a collector's error body quoted in a message


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    """An error body that says retrying cannot help, whatever the status (a 5xx
    included): the batch is refused, counted as `reason` (error.type), with `hint`."""

    reason: str
    hint: str


class HttpTransport(Transport):
    """One requests session (connections kept alive and reused)."""

    def __init__(self, url: str, *, headers: tuple[tuple[str, str], ...], gzip_body: bool,
                 verify: str | bool, client_cert: tuple[str, str] | None,
                 retryable: frozenset[int] = RETRYABLE_STATUSES,
                 hints: dict[int, str] | None = None,
                 final_answers: Mapping[str, FinalAnswer] | None = None) -> None:
        self.url = url
        # What the receiver's protocol says to retry, a hint per final status, and
        # the error bodies (by a text they hold) that are final whatever the status.
        self._retryable = retryable
        self._hints = PERMANENT_HINTS if hints is None else hints
        self._final_answers = final_answers or {}
        self._session = requests.Session()
        self._headers = {"Content-Type": PROTOBUF, "User-Agent": f"ig-metrics/{__version__}",
                         **dict(headers)}
        if gzip_body:
            self._headers["Content-Encoding"] = "gzip"
        self._gzip = gzip_body
        # Passed with each request: a `verify` given per request is kept, where a
        # session's own would give way to $REQUESTS_CA_BUNDLE.
        self._verify = verify
        self._cert = client_cert

    def send(self, request: bytes, timeout: float) -> Delivery:
        body = gzip.compress(request, compresslevel=6) if self._gzip else request
        try:
            response = self._session.post(self.url, data=body, headers=self._headers,
                                          timeout=timeout, verify=self._verify, cert=self._cert)
        except requests.exceptions.SSLError as error:
            return Delivery(failure=ExportFailure(f"POST {self.url}: TLS: {error}", "tls"))
        except requests.exceptions.Timeout:
            return Delivery(failure=ExportFailure(
                f"POST {self.url}: no answer within {timeout:g}s", "timeout"))
        except requests.exceptions.ConnectionError as error:
            return Delivery(failure=ExportFailure(f"POST {self.url}: {error}", "connection"))
        except requests.RequestException as error:
            return Delivery(failure=ExportFailure(f"POST {self.url}: {error}", "request",
                                                  retryable=False))
        if 200 <= response.status_code < 300:
            return _accepted(response)
        return Delivery(failure=_refused(self.url, response, self._retryable, self._hints,
                                         self._final_answers))

    def close(self) -> None:
        self._session.close()


def _accepted(response: requests.Response) -> Delivery:
    if not response.content or PROTOBUF not in response.headers.get("Content-Type", ""):
        return Delivery()
    try:
        partial = ExportMetricsServiceResponse.FromString(response.content).partial_success
    except ValueError:      # a 2xx with a body we cannot read: it was accepted all the same
        return Delivery()
    return Delivery(rejected_points=partial.rejected_data_points,
                    rejected_message=partial.error_message)


def _refused(url: str, response: requests.Response, retryable: frozenset[int],
             hints: dict[int, str], final_answers: Mapping[str, FinalAnswer]) -> ExportFailure:
    status = response.status_code
    message = f"POST {url}: HTTP {status} {response.reason or ''}".rstrip()
    detail = _error_detail(response)
    if detail:
        message += f": {detail}"
    final = next((answer for text, answer in final_answers.items() if text in detail), None)
    if final is not None:
        return ExportFailure(f"{message} — {final.hint}; not retried", final.reason,
                             retryable=False, batch_refused=True)
    if status in retryable:
        return ExportFailure(message, f"http_{status}", retryable=True,
                             retry_after=retry_after(response.headers.get("Retry-After")))
    hint = hints.get(status, "the collector refused the export")
    return ExportFailure(f"{message} — {hint}; not retried", f"http_{status}", retryable=False,
                         batch_refused=status in BATCH_STATUSES)


def _error_detail(response: requests.Response) -> str:
    """The google.rpc.Status message an OTLP receiver answers with, else the start
    of a text body."""
    if not response.content:
        return ""
    if PROTOBUF in response.headers.get("Content-Type", ""):
        try:
            return Status.FromString(response.content).message[:MESSAGE_LIMIT]
        except ValueError:
            return ""
    if response.headers.get("Content-Type", "").startswith(("text/", "application/json")):
        return response.text.strip().replace("\n", " ")[:MESSAGE_LIMIT]
    return ""


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for: a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class OtlpHttpExporter(OtlpExporter):
    """Posts to a collector's OTLP/HTTP receiver; https:// URLs use TLS."""

    def __init__(self, config: ResolvedExporter) -> None:
        super().__init__(config)
        endpoint = parse_http_endpoint(self.settings.endpoint)
        self.url = endpoint.url
        if "endpoint" in config.template.secrets:
            self.add_secret(self.settings.endpoint, self.url)
        self.add_secret(urlsplit(self.url).password or "")

    @property
    def target(self) -> str:
        return self.shown("endpoint", self.url)

    def create_transport(self) -> HttpTransport:
        verify, client_cert = requests_tls(self, self.settings.tls)
        return HttpTransport(self.url, headers=self.settings.headers,
                             gzip_body=self.settings.compression == "gzip",
                             verify=verify, client_cert=client_cert)


def requests_tls(exporter: Exporter[Any], tls: TlsSettings,
                 ) -> tuple[str | bool, tuple[str, str] | None]:
    """`verify` and `cert` for requests from tls: settings, each file read once
    now so that a missing one fails the start, not every export."""
    for setting, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file),
                          ("key_file", tls.key_file)):
        read_tls_file(exporter, setting, path)
    client_cert = (str(tls.cert_file), str(tls.key_file)) if tls.cert_file else None
    return (str(tls.ca_file) if tls.ca_file else True), client_cert


TYPE = otlp_type(
    "otlp-http", "Pushes OTLP over HTTP (protobuf) to a collector.", HTTP_ENDPOINT,
    "The collector's URL: http(s)://host[:port][/path]; without a path, "
    "/v1/metrics is appended.",
    "http://localhost:4318", OtlpHttpExporter, grpc=False)
