"""What the otlp-grpc and otlp-http exporters share: cardinality limits, the
newest cumulative snapshot or a queue of delta intervals, encoding through the
SDK's data classes and encoder, and delivery over a transport of our own
(retries are the worker's, not the SDK's: see docs/reliability.md)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
import logging
from pathlib import Path
import time
from typing import Any

from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.config.addresses import Endpoint, is_loopback
from ig_metrics.config.context import FileContext
from ig_metrics.config.durations import format_duration
from ig_metrics.config.fieldkinds import (
    AddressKind, Choice, DurationKind, FilePathKind, FlagKind, StringMap,
)
from ig_metrics.config.fields import EnvVar, Field, Section
from ig_metrics.config.model import DEFAULT_POINTS_PER_EXPORT, REDACTED, LimitSettings
from ig_metrics.config.otelenv import (
    HTTP_BASE_URL, HeaderListKind, MillisecondsKind, TemporalityPreferenceKind,
    otel_variables,
)
from ig_metrics.config.rules import COMMON_RULES, ExporterDraft, Rule
from ig_metrics.config.sections import build_limits, env, limits_field
from ig_metrics.exporters.backoff import RetrySettings, retry_field
from ig_metrics.exporters.base import (
    ExportFailure, ExportResult, Exporter, ExporterStartError, ExporterType,
)
from ig_metrics.exporters.delta import DeltaTracker
from ig_metrics.exporters.encoding import SHARED, encode
from ig_metrics.exporters.otlp_wire import WireEncoder
from ig_metrics.exporters.queue import (
    Batch, BatchQueue, QueueDirectoryError, QueueSettings, queue_field,
)
from ig_metrics.exporters.transport import Delivery, Transport
from ig_metrics.model.snapshot import Snapshot

log = logging.getLogger("ig_metrics.exporters")

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
    retry: RetrySettings = field(default_factory=RetrySettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {"endpoint": self.endpoint, "insecure": self.insecure}
        if self.tls.as_written():
            written["tls"] = self.tls.as_written()
        written.update(headers=dict(self.headers), timeout=format_duration(self.timeout),
                       compression=self.compression, temporality=self.temporality,
                       retry=self.retry.as_written())
        if self.temporality == "delta":
            written["queue"] = self.queue.as_written()
        written["limits"] = self.limits.as_written()
        return written

HEADER_NAME_PATTERN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"


def otlp_fields(endpoint: AddressKind, endpoint_doc: str, endpoint_example: str,
                grpc: bool) -> tuple[Field, ...]:
    tls = Section((
        Field("ca_file", FilePathKind(),
              "CA certificate (PEM) that the collector's certificate must chain to.",
              "/etc/ig-metrics/ca.pem", env=env(*otel_variables("CERTIFICATE"))),
        Field("cert_file", FilePathKind(),
              "Client certificate (PEM) for mutual TLS; needs key_file.",
              "/etc/ig-metrics/client.pem", env=env(*otel_variables("CLIENT_CERTIFICATE"))),
        Field("key_file", FilePathKind(),
              "Private key (PEM) of cert_file; needs cert_file.",
              "/etc/ig-metrics/client-key.pem", env=env(*otel_variables("CLIENT_KEY"))),
    ), owner="tls")
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


def retry_waits_grow(draft: ExporterDraft, ctx: FileContext) -> None:
    retry = draft.values.get("retry", {})
    if retry.get("initial", 0) > retry.get("max", float("inf")):
        ctx.error(draft.line_of("retry"),
                  f"{draft.site.child('retry')}: initial ({retry['initial']:g}s) is longer "
                  f"than max ({retry['max']:g}s); waits grow from initial up to max")


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


def read_tls_file(exporter: Exporter, setting: str, path: Path | None) -> bytes | None:
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

class OtlpExporter(Exporter[OtlpSettings]):
    """Cumulative: sends the newest accepted snapshot (a failed send loses
    nothing, the next carries the totals). Delta: each accepted snapshot's
    changes become a batch in a bounded queue, sent oldest first."""

    settings_type = OtlpSettings

    def __init__(self, config) -> None:
        super().__init__(config)
        self._secrets: list[str] = []
        self.add_secret(*(value for _, value in self.settings.headers))
        self._delta = DeltaTracker() if self.settings.temporality == "delta" else None
        # Encodes this exporter's delta intervals (cumulative snapshots use SHARED's).
        self._encoder = WireEncoder()
        queue_dir = self.settings.queue.dir
        if queue_dir is not None and "queue.dir" in config.template.secrets:
            self.add_secret(str(queue_dir))
        self.queue = BatchQueue(self.settings.queue,
                                queue_dir / self.name if queue_dir is not None else None,
                                self._count_dropped_batch) if self._delta else None
        self._transport: Transport | None = None
        self._warned_rejections = False

    @property
    def temporality(self) -> AggregationTemporality:
        return (AggregationTemporality.DELTA if self._delta is not None
                else AggregationTemporality.CUMULATIVE)

    @property
    def export_timeout(self) -> float:
        return self.settings.timeout

    @abstractmethod
    def create_transport(self) -> Transport:
        """The transport for these settings; ExporterStartError if it cannot be."""

    def start(self) -> None:
        if self.queue is not None:
            try:
                left = self.queue.open()
            except QueueDirectoryError as error:
                raise ExporterStartError(f"exporter {self.name}: queue.dir: "
                                         f"{self.redact(str(error))} — see "
                                         f"{self.where_configured()}") from error
            if left:
                log.info("exporter %s: %d interval%s left by a previous run will be sent "
                         "first", self.name, left, "" if left == 1 else "s")
            self._update_queue_stats()
        self._transport = self.create_transport()

    # --- accept -----------------------------------------------------------------
    def accept(self, snapshot: Snapshot) -> None:
        if self._delta is None or self.queue is None:
            super().accept(snapshot)
            return
        limited = self.within_limits(snapshot)
        pending = self._delta.prepare(limited)
        # The interval now belongs to the queue: the next delta starts here,
        # whether or not this one is ever delivered.
        self._delta.commit(pending)
        if pending.snapshot.series_count:
            encoded = encode(pending.snapshot, self.temporality,
                             self.settings.limits.max_points_per_export, self._encoder)
            self.queue.push(Batch(snapshot.time_ns, encoded.total_points,
                                  list(encoded.requests), points_per_request=list(encoded.points)))
        self._update_queue_stats()

    @property
    def pending(self) -> bool:
        if self.queue is not None:
            return len(self.queue) > 0
        return super().pending

    # --- send -------------------------------------------------------------------
    def send(self, timeout: float) -> ExportResult:
        if self.queue is None:
            return super().send(timeout)
        self.failure = None
        self._expire_old_batches()
        started = time.monotonic()
        # One send delivers batches until the queue is empty, one fails, or the
        # time of one attempt is used up (the worker calls again at once).
        while (batch := self.queue.head()) is not None:
            if not self._send_requests(batch, timeout):
                self._update_queue_stats()
                return ExportResult.FAILURE
            self.queue.pop()
            if time.monotonic() - started > timeout:
                break
        self._update_queue_stats()
        return ExportResult.SUCCESS

    def deliver(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        if snapshot.series_count == 0:
            return ExportResult.SUCCESS
        encoded = SHARED.get(snapshot, self.temporality, self.settings.limits.max_points_per_export,
                             timeout)
        batch = Batch(snapshot.time_ns, encoded.total_points, list(encoded.requests),
                      points_per_request=list(encoded.points))
        return ExportResult.SUCCESS if self._send_requests(batch, timeout) \
            else ExportResult.FAILURE

    def _send_requests(self, batch: Batch, timeout: float) -> bool:
        transport = self._transport     # shutdown() may clear it from another thread
        if transport is None:
            raise RuntimeError(f"exporter {self.name}: send before start or after shutdown")
        for index in range(batch.sent, len(batch.requests)):
            delivery = transport.send(batch.requests[index], timeout)
            if delivery.failure is not None:
                self.failure = ExportFailure(self.redact(delivery.failure.message),
                                             delivery.failure.reason, delivery.failure.retryable,
                                             delivery.failure.retry_after)
                log.debug("exporter %s: %s", self.name, self.failure.message)
                if not delivery.failure.retryable:
                    self._give_up(batch)
                return False
            points = batch.points_per_request[index] if batch.points_per_request else batch.points
            self.stats.points_exported += points - delivery.rejected_points
            self._note_rejections(delivery)
            if self.queue is not None and batch is self.queue.head():
                self.queue.progress(batch, index + 1)
            else:
                batch.sent = index + 1
        return True

    def _give_up(self, batch: Batch) -> None:
        """A permanent refusal: sending the same batch again cannot help."""
        if self.queue is not None and batch is self.queue.head():
            self.queue.drop_head("rejected")
        else:
            self.stats.dropped("rejected", batch.unsent_points)

    def _note_rejections(self, delivery: Delivery) -> None:
        if not delivery.rejected_points:
            return
        self.stats.dropped("rejected", delivery.rejected_points)
        if not self._warned_rejections:
            self._warned_rejections = True
            log.warning("exporter %s: the collector refused %d data points of an export: "
                        "%s", self.name, delivery.rejected_points,
                        self.redact(delivery.rejected_message) or "(no reason given)")

    def _expire_old_batches(self) -> None:
        max_elapsed = self.settings.retry.max_elapsed
        if max_elapsed is None or self.queue is None:
            return
        oldest = time.time_ns() - int(max_elapsed * 1e9)
        while (batch := self.queue.head()) is not None and batch.created_ns < oldest:
            self.queue.drop_head("expired")

    def _count_dropped_batch(self, batch: Batch, reason: str) -> None:
        self.stats.dropped(reason, batch.unsent_points)

    def _update_queue_stats(self) -> None:
        if self.queue is not None:
            self.stats.queue_batches = len(self.queue)
            self.stats.queue_bytes = self.queue.bytes

    # --- secrets and shutdown ---------------------------------------------------
    def add_secret(self, *values: str) -> None:
        """Strings that `redact` hides (an endpoint that came from the environment)."""
        self._secrets.extend(value for value in values if value)
        self._secrets.sort(key=len, reverse=True)    # longest first: no half-hidden value

    def redact(self, text: str) -> str:
        """`text` with every header value and other secret replaced by ***."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def shutdown(self, timeout: float) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            # Closes the channel or session: a gRPC send still waiting on a hung
            # collector returns at once; an HTTP one at its own timeout.
            transport.close()
        if self.queue is not None:
            unsent = len(self.queue)
            if unsent and self.queue.directory is None:
                log.warning("exporter %s: %d delta interval%s (%d points) not delivered are "
                            "lost; set queue.dir to keep them across restarts", self.name,
                            unsent, "" if unsent == 1 else "s", self.queue.points)
            elif unsent:
                log.info("exporter %s: %d delta interval%s kept in %s for the next run",
                         self.name, unsent, "" if unsent == 1 else "s",
                         self.redact(str(self.queue.directory)))
            self.queue.close()


