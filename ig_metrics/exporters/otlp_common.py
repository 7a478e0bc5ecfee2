"""What the otlp-grpc and otlp-http exporters share: cardinality limits, the
newest cumulative snapshot or a queue of delta intervals, encoding through the
SDK's data classes and encoder, and delivery over a transport of our own
(retries are the worker's, not the SDK's: see docs/reliability.md)."""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from pathlib import Path

from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.config.model import DEFAULT_POINTS_PER_EXPORT, REDACTED, OtlpSettings
from ig_metrics.exporters.base import (
    Exporter, ExporterStartError, ExportFailure, ExportResult,
)
from ig_metrics.exporters.delta import DeltaTracker
from ig_metrics.exporters.encoding import SHARED, encode
from ig_metrics.exporters.otlp_wire import WireEncoder
from ig_metrics.exporters.queue import Batch, BatchQueue, QueueDirectoryError
from ig_metrics.exporters.transport import Delivery, Transport
from ig_metrics.model.snapshot import Snapshot

log = logging.getLogger("ig_metrics.exporters")

# The default of limits.max_points_per_export. A default collector refuses a
# gRPC message over 4 MiB; a tcp histogram point with 40 bounds and every k8s
# attribute at its longest encodes to about 1.2 KB (tests/test_otel_conversion.py
# measures it), so 1000 points stay near 1.2 MB.
MAX_POINTS_PER_REQUEST = DEFAULT_POINTS_PER_EXPORT


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
        encoded = SHARED.get(snapshot, self.temporality, self.settings.limits.max_points_per_export)
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
