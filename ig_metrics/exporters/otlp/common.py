"""What the otlp-grpc and otlp-http exporters share: their settings, table and
rules; the newest cumulative snapshot or a queue of delta intervals, delivered
over a transport of their own (delivery/push.py; retries are the worker's, not
the SDK's: see docs/reliability.md), encoded by wire.py with explicit or
exponential histograms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.config.addresses import Endpoint, is_loopback
from ig_metrics.config.context import FileContext
from ig_metrics.config.durations import format_duration
from ig_metrics.config.fieldkinds import (
    AddressKind,
    Choice,
    DurationKind,
    FilePathKind,
    FlagKind,
    StringMap,
)
from ig_metrics.config.fields import EnvVar, Field, Section
from ig_metrics.config.model import DEFAULT_POINTS_PER_EXPORT, LimitSettings, ResolvedExporter
from ig_metrics.config.rules import COMMON_RULES, ExporterDraft, Rule
from ig_metrics.config.sections import build_limits, env, limits_field
from ig_metrics.exporters.base import Exporter, ExporterStartError, ExporterType
from ig_metrics.exporters.delivery.push import PushExporter
from ig_metrics.exporters.delivery.queue import QueueSettings, queue_field
from ig_metrics.exporters.delivery.retry import RetrySettings, retry_field, retry_waits_grow
from ig_metrics.exporters.encoding.chunks import Encoded
from ig_metrics.exporters.otlp.delta import DeltaTracker
from ig_metrics.exporters.otlp.otelenv import (
    HTTP_BASE_URL,
    HeaderListKind,
    MillisecondsKind,
    TemporalityPreferenceKind,
    otel_variables,
)
from ig_metrics.exporters.otlp.requests import SHARED, encode
from ig_metrics.exporters.otlp.wire import WireEncoder
from ig_metrics.model.snapshot import Snapshot

# The default of limits.max_points_per_export. A default collector refuses a
# gRPC message over 4 MiB; a tcp histogram point with 40 bounds and every k8s
# attribute at its longest encodes to about 1.2 KB (tests/test_otel_conversion.py
# measures it), so 1000 points stay near 1.2 MB.
MAX_POINTS_PER_REQUEST = DEFAULT_POINTS_PER_EXPORT

DEFAULT_OTLP_TIMEOUT = 10.0      # seconds


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def as_written(self) -> dict[str, str]:
        files = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        return {key: str(path) for key, path in files.items() if path is not None}


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    # otlp-grpc: as written (host:port, [v6]:port or http(s)://host:port);
    # otlp-http: the full URL, with /v1/metrics appended when no path was written.
    endpoint: str
    # True = plaintext. Already decided by the endpoint's scheme when it has one.
    insecure: bool = False
    tls: TlsSettings = field(default_factory=TlsSettings)
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_OTLP_TIMEOUT  # seconds
    compression: str = "none"              # "gzip" | "none"
    temporality: str = "cumulative"        # "cumulative" | "delta"
    histograms: str = "explicit"           # "explicit" | "exponential"
    retry: RetrySettings = field(default_factory=RetrySettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {"endpoint": self.endpoint, "insecure": self.insecure}
        if self.tls.as_written():
            written["tls"] = self.tls.as_written()
        written.update(headers=dict(self.headers), timeout=format_duration(self.timeout),
                       compression=self.compression, temporality=self.temporality,
                       histograms=self.histograms, retry=self.retry.as_written())
        if self.temporality == "delta":
            written["queue"] = self.queue.as_written()
        written["limits"] = self.limits.as_written()
        return written

HEADER_NAME_PATTERN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"


def client_tls_section(peer: str, otel_env: bool) -> Section:
    """tls: of a push exporter: the CA of `peer`'s certificate, a client one (mTLS);
    with `otel_env`, each also from its OTEL_EXPORTER_OTLP_* variable."""
    def variables(name: str) -> tuple[EnvVar, ...]:
        return env(*otel_variables(name)) if otel_env else ()
    return Section((
        Field("ca_file", FilePathKind(),
              f"CA certificate (PEM) that the {peer}'s certificate must chain to.",
              "/etc/ig-metrics/ca.pem", env=variables("CERTIFICATE")),
        Field("cert_file", FilePathKind(),
              "Client certificate (PEM) for mutual TLS; needs key_file.",
              "/etc/ig-metrics/client.pem", env=variables("CLIENT_CERTIFICATE")),
        Field("key_file", FilePathKind(),
              "Private key (PEM) of cert_file; needs cert_file.",
              "/etc/ig-metrics/client-key.pem", env=variables("CLIENT_KEY")),
    ), owner="tls")


def otlp_fields(endpoint: AddressKind, endpoint_doc: str, endpoint_example: str,
                grpc: bool) -> tuple[Field, ...]:
    tls = client_tls_section("collector", otel_env=True)
    metrics_endpoint, generic_endpoint = otel_variables("ENDPOINT")
    endpoint_env = (EnvVar(metrics_endpoint),
                    EnvVar(generic_endpoint, None if grpc else HTTP_BASE_URL))
    insecure_env = env(*otel_variables("INSECURE")) if grpc else ()
    return (
        Field("endpoint", endpoint, endpoint_doc, endpoint_example, required=True,
              env=endpoint_env),
        Field("insecure", FlagKind(),
              "Send in plaintext, without TLS; not together with tls:. An http:// or "
              "https:// endpoint decides by its scheme instead (a contradicting insecure "
              "is ignored with a warning).",
              True, default=False, default_shown=False, env=insecure_env),
        Field("tls", tls,
              "TLS files; relative paths are relative to this YAML file's directory.",
              {"ca_file": "ca.pem"}),
        Field("headers", StringMap(HEADER_NAME_PATTERN, "header names are HTTP tokens",
                                   secret_values=True, lowercase_keys=grpc),
              ("gRPC metadata sent with every export; names in lowercase. "
               if grpc else "HTTP headers sent with every export. ")
              + "ig-metrics never shows their values.",
              {"x-tenant": "${env:IG_TENANT}"}, default=(), default_shown={},
              env=env(*otel_variables("HEADERS"), kind=HeaderListKind(lowercase=grpc))),
        Field("timeout", DurationKind(),
              "The longest one attempt (one request) may take; then it counts as failed "
              "and is retried as retry: says.",
              "5s", default=DEFAULT_OTLP_TIMEOUT, default_shown=f"{DEFAULT_OTLP_TIMEOUT:g}s",
              env=env(*otel_variables("TIMEOUT"), kind=MillisecondsKind())),
        Field("compression", Choice(("gzip", "none")), "Compression of each export.",
              "gzip", default="none", default_shown="none",
              env=env(*otel_variables("COMPRESSION"))),
        Field("temporality", Choice(("cumulative", "delta")),
              "cumulative: totals since the start (what Prometheus-style back ends "
              "expect); delta: the change since the previous export.",
              "cumulative", default="cumulative", default_shown="cumulative",
              env=env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                      kind=TemporalityPreferenceKind())),
        Field("histograms", Choice(("explicit", "exponential")),
              "explicit: Histograms with the kernel's bucket bounds; exponential: "
              "ExponentialHistograms of scale 0, the kernel's log2 slots as they are "
              "(docs/exporters.md, \"Native and exponential histograms\").",
              "exponential", default="explicit", default_shown="explicit"),
        retry_field(),
        queue_field(),
        limits_field(push=True),
    )


def build_otlp(values: Mapping[str, Any]) -> OtlpSettings:
    return OtlpSettings(
        endpoint=values["endpoint"].url,
        insecure=values["insecure"],
        tls=TlsSettings(**values.get("tls", {})),
        headers=values["headers"],
        timeout=values["timeout"],
        compression=values["compression"],
        temporality=values["temporality"],
        histograms=values["histograms"],
        retry=RetrySettings(**values.get("retry", {})),
        queue=QueueSettings(**values.get("queue", {})),
        limits=build_limits(values),
    )


def scheme_decides_insecure(draft: ExporterDraft, ctx: FileContext) -> None:
    """http:// means plaintext and https:// TLS, whatever `insecure` says (as in the
    OpenTelemetry SDK, where https:// forces TLS); a disagreeing `insecure` is ignored."""
    endpoint: Endpoint | None = draft.values.get("endpoint")
    if endpoint is None or endpoint.scheme is None or "insecure" not in draft.values:
        return
    plaintext = endpoint.scheme == "http"
    if "insecure" in draft.lines and draft.values["insecure"] != plaintext:
        ctx.warning(draft.line_of("insecure"),
                    f"{draft.site.child('insecure')}: ignored: the endpoint's "
                    f"{endpoint.scheme}:// scheme means {'plaintext' if plaintext else 'TLS'}")
    draft.values["insecure"] = plaintext


def insecure_excludes_tls(draft: ExporterDraft, ctx: FileContext) -> None:
    if "tls" not in draft.values:
        return
    if "tls" not in draft.lines:
        # From OTEL_EXPORTER_OTLP_*CERTIFICATE: a default, which plaintext overrides.
        if draft.values.get("insecure"):
            del draft.values["tls"]
        return
    if "insecure" in draft.lines and draft.values["insecure"] is True:
        ctx.error(draft.line_of("insecure"),
                  f"{draft.site}: insecure: true turns TLS off, but tls: is set; "
                  "remove one of them")
    elif draft.values.get("insecure"):
        ctx.error(draft.line_of("tls"),
                  f"{draft.site}: tls: is set, but the endpoint's http:// scheme sends "
                  "in plaintext; use https://")


def insecure_only_to_loopback(draft: ExporterDraft, ctx: FileContext) -> None:
    endpoint: Endpoint | None = draft.values.get("endpoint")
    if endpoint and draft.values.get("insecure") and not is_loopback(endpoint.host):
        ctx.warning(draft.line_of("insecure" if "insecure" in draft.lines else "endpoint"),
                    f"{draft.site}: metrics go unencrypted (insecure) to a host that is "
                    "not loopback; use TLS unless the network is trusted")


def client_certificate_with_key(draft: ExporterDraft, ctx: FileContext) -> None:
    tls = draft.values.get("tls", {})
    if ("cert_file" in tls) != ("key_file" in tls):
        missing = "key_file" if "cert_file" in tls else "cert_file"
        ctx.error(draft.line_of("tls"),
                  f"{draft.site.child('tls')}: cert_file and key_file go together "
                  f"(a client certificate and its private key); {missing} is missing")


def queue_needs_delta(draft: ExporterDraft, ctx: FileContext) -> None:
    if "queue" in draft.lines and draft.values.get("temporality") != "delta":
        ctx.warning(draft.line_of("queue"),
                    f"{draft.site.child('queue')}: ignored: only temporality: delta queues "
                    "intervals; a cumulative export carries the totals, so a failed one "
                    "loses nothing")

OTLP_RULES: tuple[Rule, ...] = (
    scheme_decides_insecure,
    insecure_excludes_tls,
    insecure_only_to_loopback,
    client_certificate_with_key,
    retry_waits_grow,
    queue_needs_delta,
)


def read_tls_file(exporter: Exporter[Any], setting: str, path: Path | None) -> bytes | None:
    """The bytes of a tls.* file, or ExporterStartError naming the exporter and file."""
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        shown = exporter.shown(f"tls.{setting}", str(path))
        raise ExporterStartError(
            f"exporter {exporter.name}: cannot read tls.{setting} {shown}: "
            f"{error.strerror or error} — fix it in {exporter.where_configured()}") from error


def otlp_type(name: str, doc: str, endpoint: AddressKind, endpoint_doc: str,
              endpoint_example: str, implementation: type[OtlpExporter],
              grpc: bool) -> ExporterType:
    """The declaration of an OTLP exporter type: the two differ in their
    endpoint, their implementation and a few settings (`grpc`)."""
    return ExporterType(name, doc, otlp_fields(endpoint, endpoint_doc, endpoint_example, grpc=grpc),
                        build_otlp, implementation, COMMON_RULES + OTLP_RULES,
                        address_key="endpoint")


class OtlpExporter(PushExporter[OtlpSettings]):
    """Cumulative: sends the newest accepted snapshot (a failed send loses
    nothing, the next carries the totals). Delta: each accepted snapshot's
    changes become a batch in a bounded queue, sent oldest first."""

    settings_type = OtlpSettings

    def __init__(self, config: ResolvedExporter) -> None:
        settings = config.template.settings        # checked by Exporter.__init__, below
        self._delta = DeltaTracker() if isinstance(settings, OtlpSettings) \
            and settings.temporality == "delta" else None
        super().__init__(config)
        # Encodes this exporter's delta intervals (cumulative snapshots use SHARED's).
        self._encoder = WireEncoder()
        self.exponential = self.settings.histograms == "exponential"

    @property
    def queued(self) -> bool:
        return self._delta is not None

    @property
    def temporality(self) -> AggregationTemporality:
        return (AggregationTemporality.DELTA if self._delta is not None
                else AggregationTemporality.CUMULATIVE)

    def interval(self, limited: Snapshot) -> Snapshot:
        assert self._delta is not None       # only a queued (delta) exporter is asked
        pending = self._delta.prepare(limited)
        # The interval now belongs to the queue: the next delta starts here,
        # whether or not this one is ever delivered.
        self._delta.commit(pending)
        return pending.snapshot

    def encode_interval(self, snapshot: Snapshot) -> Encoded:
        return encode(snapshot, self.temporality, self.settings.limits.max_points_per_export,
                      self._encoder, self.exponential)

    def encode_latest(self, snapshot: Snapshot, timeout: float) -> Encoded:
        return SHARED.get(snapshot, self.temporality, self.settings.limits.max_points_per_export,
                          timeout, self.exponential)
