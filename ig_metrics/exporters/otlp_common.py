"""What the otlp-grpc and otlp-http exporters share: a snapshot (or its delta)
as MetricsData handed to an SDK OTLP exporter's public `export()`, the reason
of a failure as the SDK logged it, and header values kept out of every message."""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality, MetricExporter, MetricExportResult,
)

from ig_metrics.config.model import REDACTED, OtlpSettings
from ig_metrics.exporters.base import Exporter, ExporterStartError, ExportResult
from ig_metrics.exporters.delta import DeltaTracker, PendingDelta
from ig_metrics.pipeline.otel import to_metrics_data
from ig_metrics.pipeline.snapshot import Snapshot

log = logging.getLogger("ig_metrics.exporters")

# Data points per OTLP request. A default collector refuses a gRPC message over
# 4 MiB. A tcp histogram point with 40 bounds and every k8s attribute at its
# longest encodes to about 1.2 KB, a counter point to about 0.55 KB, so 1000
# points stay near 1.2 MB (tests/test_otel_conversion.py measures it): a margin of
# three for longer attribute values. More requests cost little; a refused one
# loses the whole interval.
MAX_POINTS_PER_REQUEST = 1000


class SdkFailureCapture(logging.Filter):
    """Takes the messages an SDK exporter logs while *this thread* exports, so
    that a failure's reason becomes the exporter's `last_failure` (and its status
    line) instead of one log line per retry. Records of other threads pass."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        messages: list[logging.LogRecord] | None = getattr(self._local, "records", None)
        if messages is None:
            return True
        messages.append(record)
        return False

    @contextmanager
    def capturing(self) -> Iterator[list[logging.LogRecord]]:
        records: list[logging.LogRecord] = []
        self._local.records = records
        try:
            yield records
        finally:
            del self._local.records

    def install(self, logger_names: Sequence[str]) -> None:
        for name in logger_names:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                # First, ahead of the SDK's DuplicateFilter, which would otherwise
                # hide a repeated failure from every exporter for 20 s.
                logger.filters.insert(0, self)


SDK_FAILURES = SdkFailureCapture()


def describe_failure(records: list[logging.LogRecord]) -> str:
    """The last error the SDK logged; when that error says only "timeout, max
    retries or shutdown", the last transient error (the cause) is added."""
    errors = [record.getMessage() for record in records if record.levelno >= logging.ERROR]
    warnings = [record.getMessage() for record in records
                if logging.WARNING <= record.levelno < logging.ERROR]
    if not errors:
        return warnings[-1] if warnings else "the export was not accepted (no reason given)"
    if warnings and "code:" not in errors[-1]:
        return f"{errors[-1]} (last error: {warnings[-1]})"
    return errors[-1]


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


class OtlpExporter(Exporter[OtlpSettings]):
    """An exporter that converts each snapshot to MetricsData (cumulative, or
    delta through a DeltaTracker) and hands it to an SDK OTLP exporter."""

    settings_type = OtlpSettings
    # Loggers the SDK exporter reports failures on (see SdkFailureCapture).
    sdk_logger_names: tuple[str, ...] = ()

    def __init__(self, config) -> None:
        super().__init__(config)
        self._delta = DeltaTracker() if self.settings.temporality == "delta" else None
        self._sdk: MetricExporter | None = None
        self._secrets: list[str] = []
        self.add_secret(*(value for _, value in self.settings.headers))

    @property
    def temporality(self) -> AggregationTemporality:
        return (AggregationTemporality.DELTA if self._delta is not None
                else AggregationTemporality.CUMULATIVE)

    @property
    def export_timeout(self) -> float:
        return self.settings.timeout

    @abstractmethod
    def create_sdk_exporter(self) -> MetricExporter:
        """The SDK exporter for these settings; ExporterStartError if it cannot be."""

    def start(self) -> None:
        SDK_FAILURES.install(self.sdk_logger_names)
        self._sdk = self.create_sdk_exporter()

    def export(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        sdk = self._sdk              # shutdown() may clear it from another thread
        if sdk is None:
            raise RuntimeError(f"exporter {self.name}: export before start or after shutdown")
        pending = self._delta.prepare(snapshot) if self._delta is not None else None
        to_send = pending.snapshot if pending is not None else snapshot
        if to_send.series_count == 0:          # a delta with nothing new: nothing to send
            self._delivered(pending)
            return ExportResult.SUCCESS
        data = to_metrics_data(to_send, self.temporality)
        self.before_export()
        with SDK_FAILURES.capturing() as records:
            result = sdk.export(data, timeout_millis=timeout * 1000)
        if result is MetricExportResult.SUCCESS:
            self._delivered(pending)
            return ExportResult.SUCCESS
        self.last_failure = self.redact(self.failure_reason(records))
        log.debug("exporter %s: %s", self.name, self.last_failure)
        return ExportResult.FAILURE

    def _delivered(self, pending: PendingDelta | None) -> None:
        if pending is not None and self._delta is not None:
            self._delta.commit(pending)

    def before_export(self) -> None:
        """Reset what a transport remembers of the previous export's problems."""

    def failure_reason(self, sdk_records: list[logging.LogRecord]) -> str:
        """Why the export just made failed, from what the SDK logged meanwhile."""
        return describe_failure(sdk_records)

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
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            # Closes the channel or session: an export still waiting on a hung
            # collector (gRPC) or in a retry backoff returns early.
            sdk.shutdown(timeout_millis=timeout * 1000)
