"""What the push exporters (otlp-grpc, otlp-http, prometheus-remote-write)
share: a transport of their own whose failures the worker retries (see
docs/reliability.md), the newest cumulative snapshot or a bounded queue of
batches (optionally on disk), rejections counted, secrets redacted."""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from dataclasses import replace
from typing import Protocol, TypeVar

from ig_metrics.config.model import REDACTED, ExporterSettings, ResolvedExporter
from ig_metrics.exporters.base import (
    Exporter,
    ExporterStartError,
    ExportFailure,
    ExportResult,
)
from ig_metrics.exporters.delivery.queue import (
    Batch,
    BatchQueue,
    QueueDirectoryError,
    QueueSettings,
)
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.exporters.delivery.transport import Delivery, Transport
from ig_metrics.exporters.encoding.chunks import Encoded
from ig_metrics.model.snapshot import Snapshot

log = logging.getLogger("ig_metrics.exporters")


class PushSettings(ExporterSettings, Protocol):
    """What a push exporter type's settings have besides limits."""

    @property
    def headers(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def timeout(self) -> float: ...

    @property
    def retry(self) -> RetrySettings: ...

    @property
    def queue(self) -> QueueSettings: ...


PushSettingsT = TypeVar("PushSettingsT", bound=PushSettings)


class PushExporter(Exporter[PushSettingsT]):
    """Sends over a Transport of its own. Not queued: each send delivers the
    newest accepted snapshot (`encode_latest`; cumulative data, so a failed
    send loses nothing, the next carries the totals). Queued: each accepted
    snapshot becomes a batch (`interval`, then `encode_interval`) in a bounded
    queue, optionally on disk, sent oldest first. A subclass's settings have
    headers, timeout, retry, queue and limits."""

    def __init__(self, config: ResolvedExporter) -> None:
        super().__init__(config)
        self._secrets: list[str] = []
        self.add_secret(*(value for _, value in self.settings.headers))
        queue_dir = self.settings.queue.dir
        if queue_dir is not None and "queue.dir" in config.template.secrets:
            self.add_secret(str(queue_dir))
        self.queue = BatchQueue(self.settings.queue,
                                queue_dir / self.name if queue_dir is not None else None,
                                self._count_dropped_batch) if self.queued else None
        self._transport: Transport | None = None
        self._refusals_said: set[str] = set()

    @property
    @abstractmethod
    def queued(self) -> bool:
        """Whether accepted snapshots are queued as batches (read in __init__)."""

    def interval(self, limited: Snapshot) -> Snapshot:
        """What a queued batch holds of an accepted (limited) snapshot."""
        return limited

    @abstractmethod
    def encode_interval(self, snapshot: Snapshot) -> Encoded:
        """The requests of a queued batch."""

    @abstractmethod
    def encode_latest(self, snapshot: Snapshot, timeout: float) -> Encoded:
        """The requests of the newest snapshot, when not queued, made within
        `timeout` seconds."""

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
        if self.queue is None:
            super().accept(snapshot)
            return
        interval = self.interval(self.within_limits(snapshot))
        if interval.point_count:
            encoded = self.encode_interval(interval)
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
        self.trouble = ""
        self._expire_old_batches()
        started = time.monotonic()
        refused: ExportFailure | None = None
        delivered = False
        # One send delivers batches until the queue is empty, one fails, or the
        # time of one attempt is used up (the worker calls again at once). A
        # batch refused for what it holds is dropped (_give_up) and the next one
        # goes at once: it must not hold up the data behind it.
        while (batch := self.queue.head()) is not None:
            if self._send_requests(batch, timeout):
                self.queue.pop()
                delivered = True
            elif self.failure is not None and self.failure.batch_refused:
                refused, self.failure = self.failure, None
            else:
                self._update_queue_stats()
                return ExportResult.FAILURE
            if time.monotonic() - started > timeout:
                break
        self._update_queue_stats()
        if refused is not None and not delivered:
            self.failure = refused
            return ExportResult.FAILURE
        if refused is not None:
            self.trouble = refused.message
            self._say_once(refused.reason, refused.message)
        return ExportResult.SUCCESS

    def deliver(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        if snapshot.point_count == 0:
            return ExportResult.SUCCESS
        encoded = self.encode_latest(snapshot, timeout)
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
                self.failure = replace(delivery.failure,
                                       message=self.redact(delivery.failure.message))
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
        reason = self.redact(delivery.rejected_message) or "no reason given"
        points = delivery.rejected_points
        self.trouble = f"{points} data point{'' if points == 1 else 's'} refused: {reason}"
        self._say_once("partial", self.trouble)

    def _say_once(self, kind: str, text: str) -> None:
        """Log a refusal the first time one of its kind comes (health shows each)."""
        if kind not in self._refusals_said:
            self._refusals_said.add(kind)
            log.warning("exporter %s: %s", self.name, text)

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
                log.warning("exporter %s: %d interval%s (%d points) not delivered are "
                            "lost; set queue.dir to keep them across restarts", self.name,
                            unsent, "" if unsent == 1 else "s", self.queue.points)
            elif unsent:
                log.info("exporter %s: %d interval%s kept in %s for the next run",
                         self.name, unsent, "" if unsent == 1 else "s",
                         self.redact(str(self.queue.directory)))
            self.queue.close()
