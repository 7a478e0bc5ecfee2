"""The prometheus-remote-write exporter: pushes every accepted snapshot as
Prometheus remote write 1.0 (a snappy-compressed WriteRequest of cumulative
samples, wire.py) to Prometheus' /api/v1/write, Mimir, Thanos Receive,
VictoriaMetrics and the like. It shares the OTLP push exporters' machinery
(delivery/push.py): a bounded queue, optionally on disk, sent oldest first,
so an outage or a restart loses no sample; retries with backoff (5xx and 429,
honouring Retry-After); a 4xx, or an answer that says retrying cannot help, is
final (logged once, the batch dropped and counted as rejected). A receiver that
takes no native histograms still gets the rest of each request."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from ig_metrics import __version__
from ig_metrics.config.addresses import URL_FORMS, Endpoint, is_loopback, parse_url
from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.durations import format_duration
from ig_metrics.config.fieldkinds import (
    AddressKind,
    Choice,
    DurationKind,
    Parsed,
    StringMap,
    TextKind,
)
from ig_metrics.config.fields import Field, Section
from ig_metrics.config.model import LimitSettings, ResolvedExporter
from ig_metrics.config.rules import COMMON_RULES, ExporterDraft, Rule
from ig_metrics.config.sections import build_limits, limits_field
from ig_metrics.exporters.base import ExporterType
from ig_metrics.exporters.delivery.push import PushExporter
from ig_metrics.exporters.delivery.queue import QueueSettings, queue_field
from ig_metrics.exporters.delivery.retry import RetrySettings, retry_field, retry_waits_grow
from ig_metrics.exporters.delivery.transport import Delivery
from ig_metrics.exporters.encoding.chunks import Encoded, split
from ig_metrics.exporters.otlp.common import (
    HEADER_NAME_PATTERN,
    TlsSettings,
    client_certificate_with_key,
    client_tls_section,
)
from ig_metrics.exporters.otlp.http import FinalAnswer, HttpTransport, requests_tls
from ig_metrics.exporters.remotewrite.wire import (
    CLASSIC,
    NATIVE,
    VERSION,
    RemoteWriteEncoder,
    compress,
    decompress,
    without_native_histograms,
)
from ig_metrics.model.snapshot import Snapshot

DEFAULT_TIMEOUT = 10.0          # seconds
# Remote write 1.0: retry 5xx and 429; any other status is final.
RETRYABLE_STATUSES = frozenset(range(500, 600)) | {429}
HINTS = {
    400: "the receiver refused the samples (out of order, too old, or invalid): "
         "the batch is dropped",
    401: "check basic_auth, bearer_token or the Authorization header",
    403: "check basic_auth, bearer_token or the Authorization header",
    404: "nothing takes remote write at this URL: check url (Prometheus: /api/v1/write, "
         "started with --web.enable-remote-write-receiver)",
    405: "nothing takes remote write at this URL: check url",
    413: "the request is too large: lower limits.max_points_per_export",
    422: "the receiver refused the samples: the batch is dropped",
}
NATIVE_REFUSED = "native_histograms_disabled"       # its error.type
NATIVE_FIX = ("the receiver has native histograms disabled: start it with "
              "--enable-feature=native-histograms, or set histograms: classic")
# Answers that retrying cannot cure whatever their status: Prometheus answers
# 500 to native histograms it does not take (a 4xx may come instead in future),
# so the request would be retried for ever and nothing behind it arrive.
FINAL_ANSWERS = {"native histograms are disabled": FinalAnswer(NATIVE_REFUSED, NATIVE_FIX)}
LABEL_NAME_PATTERN = r"[a-zA-Z_][a-zA-Z0-9_]*"
URL = AddressKind("remote write URL", URL_FORMS, parse_url,
                  r"^https?://([^@/]+@)?[^/?#]+/[^#]*$")


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """The user and password the exporter sends (HTTP basic authentication)."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class RemoteWriteSettings:
    url: str
    tls: TlsSettings = field(default_factory=TlsSettings)
    basic_auth: BasicCredentials | None = None
    bearer_token: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_TIMEOUT       # seconds
    external_labels: tuple[tuple[str, str], ...] = ()
    histograms: str = CLASSIC              # "classic" | "native"
    retry: RetrySettings = field(default_factory=RetrySettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {"url": self.url}
        if self.tls.as_written():
            written["tls"] = self.tls.as_written()
        if self.basic_auth is not None:
            written["basic_auth"] = {"username": self.basic_auth.username,
                                     "password": self.basic_auth.password}
        if self.bearer_token:
            written["bearer_token"] = self.bearer_token
        written.update(headers=dict(self.headers), timeout=format_duration(self.timeout),
                       external_labels=dict(self.external_labels), histograms=self.histograms,
                       retry=self.retry.as_written(), queue=self.queue.as_written(),
                       limits=self.limits.as_written())
        return written


class SecretTextKind(TextKind):
    """Text that is a credential: never shown, even when written in the file."""

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        ctx.secrets.add(site.key)
        return super().parse(node, site, ctx)


def remote_write_fields() -> tuple[Field, ...]:
    basic_auth = Section((
        Field("username", TextKind(), "The user name.", "ig-metrics", required=True),
        Field("password", SecretTextKind(),
              "Its password; write it as ${env:VAR} to keep it out of the file.",
              "${env:REMOTE_WRITE_PASSWORD}", required=True),
    ), owner="basic_auth")
    return (
        Field("url", URL,
              "The receiver's remote write URL, path included: Prometheus "
              "http://host:9090/api/v1/write, Mimir /api/v1/push, Thanos Receive "
              "/api/v1/receive, VictoriaMetrics /api/v1/write.",
              "http://localhost:9090/api/v1/write", required=True),
        Field("tls", client_tls_section("receiver", otel_env=False),
              "TLS files for an https:// url; relative paths are relative to this YAML "
              "file's directory.", {"ca_file": "ca.pem"}),
        Field("basic_auth", basic_auth, "HTTP basic auth with every request.",
              {"username": "ig-metrics", "password": "${env:REMOTE_WRITE_PASSWORD}"}),
        Field("bearer_token", SecretTextKind(),
              "Sent as `Authorization: Bearer ...` with every request; not together with "
              "basic_auth.", "${env:REMOTE_WRITE_TOKEN}"),
        Field("headers", StringMap(HEADER_NAME_PATTERN, "header names are HTTP tokens",
                                   secret_values=True),
              "HTTP headers sent with every request (X-Scope-OrgID for a Mimir tenant...). "
              "ig-metrics never shows their values.",
              {"X-Scope-OrgID": "${env:IG_TENANT}"}, default=(), default_shown={}),
        Field("timeout", DurationKind(),
              "The longest one request may take; then it counts as failed and is retried "
              "as retry: says.",
              "5s", default=DEFAULT_TIMEOUT, default_shown=f"{DEFAULT_TIMEOUT:g}s"),
        Field("external_labels", StringMap(LABEL_NAME_PATTERN,
                                           "label names are letters, digits and _, not "
                                           "starting with a digit"),
              "Labels added to every series a series does not have itself, as "
              "Prometheus' own external_labels (cluster, replica...).",
              {"cluster": "prod-eu-1"}, default=(), default_shown={}),
        Field("histograms", Choice((CLASSIC, NATIVE)),
              "classic: _bucket/_count/_sum series; native: one native histogram (schema "
              "0, the kernel's log2 slots) per series, which the receiver must accept "
              "(Prometheus: --enable-feature=native-histograms).",
              NATIVE, default=CLASSIC, default_shown=CLASSIC),
        retry_field(),
        queue_field("Every snapshot not delivered yet, sent oldest first once the receiver "
                    "is back; with dir, also across a restart of ig-metrics."),
        limits_field(push=True),
    )


def build_remote_write(values: Mapping[str, Any]) -> RemoteWriteSettings:
    auth = values.get("basic_auth")
    return RemoteWriteSettings(
        url=values["url"].url,
        tls=TlsSettings(**values.get("tls", {})),
        basic_auth=BasicCredentials(**auth) if auth else None,
        bearer_token=values.get("bearer_token", ""),
        headers=values["headers"],
        timeout=values["timeout"],
        external_labels=values["external_labels"],
        histograms=values["histograms"],
        retry=RetrySettings(**values.get("retry", {})),
        queue=QueueSettings(**values.get("queue", {})),
        limits=build_limits(values),
    )


def one_credential(draft: ExporterDraft, ctx: FileContext) -> None:
    given: list[str] = [key for key in ("basic_auth", "bearer_token") if key in draft.values]
    headers = {name.lower() for name, _ in draft.values.get("headers", ())}
    if "authorization" in headers:
        given.append("headers.Authorization")
    if len(given) > 1:
        ctx.error(draft.line_of(given[1].partition(".")[0]),
                  f"{draft.site}: {' and '.join(given)} both set the Authorization header; "
                  "keep one")


def tls_needs_https(draft: ExporterDraft, ctx: FileContext) -> None:
    url: Endpoint | None = draft.values.get("url")
    if url is not None and url.scheme == "http" and "tls" in draft.values:
        ctx.error(draft.line_of("tls"),
                  f"{draft.site}: tls: is set, but the url's http:// scheme sends in "
                  "plaintext; use https://")


def credentials_not_in_clear(draft: ExporterDraft, ctx: FileContext) -> None:
    url: Endpoint | None = draft.values.get("url")
    credential = next((key for key in ("basic_auth", "bearer_token") if key in draft.values),
                      None)
    if url is not None and credential and url.scheme == "http" and not is_loopback(url.host):
        ctx.warning(draft.line_of(credential),
                    f"{draft.site}: {credential} goes in clear over http:// to a host that "
                    "is not loopback; use https://")


def no_reserved_labels(draft: ExporterDraft, ctx: FileContext) -> None:
    for name, _ in draft.values.get("external_labels", ()):
        if name.startswith("__"):
            ctx.error(draft.line_of("external_labels"),
                      f"{draft.site.child('external_labels')}: {name}: names starting with "
                      "__ are reserved for Prometheus' own use")


RULES: tuple[Rule, ...] = (client_certificate_with_key, retry_waits_grow, one_credential,
                           tls_needs_https, credentials_not_in_clear, no_reserved_labels)


class RemoteWriteTransport(HttpTransport):
    """HttpTransport, and what a receiver without native histograms needs: a
    request refused for its native histograms is sent again without them, so
    that counters and gauges still arrive; the histograms count as rejected,
    with the fix as the reason. Every request is tried whole first, so native
    histograms flow again as soon as the receiver takes them."""

    def send(self, request: bytes, timeout: float) -> Delivery:
        delivery = super().send(request, timeout)
        if delivery.failure is None or delivery.failure.reason != NATIVE_REFUSED:
            return delivery
        rest, histograms = without_native_histograms(decompress(request))
        if not histograms:
            return delivery
        resent = super().send(compress(rest), timeout) if rest else Delivery()
        if resent.failure is not None:
            return resent
        return Delivery(rejected_points=histograms + resent.rejected_points,
                        rejected_message=NATIVE_FIX)


class RemoteWriteExporter(PushExporter[RemoteWriteSettings]):
    """Every accepted snapshot is a batch of timestamped samples in the queue;
    a send delivers them oldest first (the receiver needs each series' samples
    in time order)."""

    settings_type = RemoteWriteSettings

    def __init__(self, config: ResolvedExporter) -> None:
        super().__init__(config)
        settings = self.settings
        self.url = settings.url
        if settings.basic_auth is not None:
            self.add_secret(settings.basic_auth.password)
        self.add_secret(settings.bearer_token, urlsplit(self.url).password or "")
        self._encoder = RemoteWriteEncoder(settings.external_labels, settings.histograms)

    @property
    def queued(self) -> bool:
        return True

    @property
    def target(self) -> str:
        return self.shown("url", self.url)

    def encode_interval(self, snapshot: Snapshot) -> Encoded:
        chunks = split(snapshot, self.settings.limits.max_points_per_export)
        requests = tuple(map(compress, self._encoder.encode(chunks)))
        return Encoded(requests, tuple(chunk.point_count for chunk in chunks))

    def encode_latest(self, snapshot: Snapshot, timeout: float) -> Encoded:
        return self.encode_interval(snapshot)

    def create_transport(self) -> RemoteWriteTransport:
        settings = self.settings
        verify, client_cert = requests_tls(self, settings.tls)
        headers = {"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": VERSION,
                   "User-Agent": f"ig-metrics/{__version__}"}
        if settings.basic_auth is not None:
            pair = f"{settings.basic_auth.username}:{settings.basic_auth.password}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            self.add_secret(headers["Authorization"].split(" ", 1)[1])
        elif settings.bearer_token:
            headers["Authorization"] = f"Bearer {settings.bearer_token}"
        return RemoteWriteTransport(self.url, headers=(*headers.items(), *settings.headers),
                                    gzip_body=False, verify=verify, client_cert=client_cert,
                                    retryable=RETRYABLE_STATUSES, hints=HINTS,
                                    final_answers=FINAL_ANSWERS)


TYPE = ExporterType(
    "prometheus-remote-write",
    "Pushes Prometheus remote write 1.0 to Prometheus, Mimir, Thanos or VictoriaMetrics.",
    remote_write_fields(), build_remote_write, RemoteWriteExporter, COMMON_RULES + RULES,
    address_key="url")
