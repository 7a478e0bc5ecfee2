"""One thread per exporter: hands it each new snapshot at its interval, sends
what is pending, retries failures with backoff, widens the interval under load,
keeps its health for the live table, logs each change of health once and tells
an observer of it (`on_health`); and stops within a deadline even when the
collector hangs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ig_metrics.exporters.base import (
    Exporter,
    ExporterStatus,
    ExportFailure,
    ExportResult,
    Health,
)
from ig_metrics.exporters.delivery.health import HealthTracker
from ig_metrics.exporters.delivery.load import LoadGovernor
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.model.snapshot import Snapshot

log = logging.getLogger("ig_metrics.exporters")

POLL_SECONDS = 0.05        # how often a worker looks for a first or a newer snapshot
OVERRUN_GRACE = 1.0        # an export this far past its timeout shows as failing
SHUTDOWN_SHARE = 0.25      # of stop()'s timeout, kept for shutdown after the final export
SHUTDOWN_MAX = 1.0         # ... but never more than this many seconds
LOSSES = ("queue_full", "expired", "rejected")    # drops that make an exporter degraded


@dataclass(frozen=True, slots=True)
class HealthChange:
    """One change of an exporter's health, as the worker's `on_health` observer
    is told of it (each is also logged), from its own thread."""

    before: Health
    after: Health
    failure: ExportFailure | None = None    # the failure that made it, if one did


class ExporterWorker:
    """Runs `exporter` in its own thread so that a slow or hung exporter delays
    neither the sampler nor the other exporters.

    At each interval the newest snapshot `get_latest` returns is accepted (if
    it is new); whatever is pending is then sent. A failed send is tried again
    after a backoff (retryable failures), or not before the next interval
    (permanent ones). A pull exporter gets every new snapshot at once, since
    handing it one only swaps what its readers see. Sends are bounded by the
    exporter itself (`export_timeout` per request); one that overruns it shows
    as failing in `status()`. `sampler_share`, when given, says which share of
    its interval the sampler's last reading took (the load governor widens the
    interval when the process runs short). `on_health`, when given, is called
    with each HealthChange (the seam tests observe instead of the log).
    """

    def __init__(self, exporter: Exporter[Any], interval: float,
                 get_latest: Callable[[], Snapshot | None], *,
                 poll: float = POLL_SECONDS, max_interval: float | None = None,
                 sampler_share: Callable[[], float] | None = None,
                 retry: RetrySettings | None = None,
                 on_health: Callable[[HealthChange], None] | None = None) -> None:
        self.exporter = exporter
        self._on_health = on_health or (lambda change: None)
        self.configured_interval = interval
        self._get_latest = get_latest
        self._poll = poll
        self._sampler_share = sampler_share or (lambda: 0.0)
        limits = exporter.settings.limits
        self.governor = LoadGovernor(interval, max_interval or exporter.config.max_interval,
                                     limits.max_export_share)
        if retry is None:               # a pull exporter's settings have none
            retry = getattr(exporter.settings, "retry", RetrySettings())
        self.retry: RetrySettings = retry
        self._internal_error = ""          # the last internal error logged in full
        self.backoff = self.retry.backoff()
        self.tracker = HealthTracker()
        self.stats = exporter.stats
        self.stats.interval = interval
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name=f"exporter-{exporter.name}",
                                        daemon=True)
        self._stopping = False
        self._final: Snapshot | None = None
        self._accepted_seq: int | None = None
        # What status() reports; written under _lock.
        self._health = Health.STARTING
        self._exports_ok = 0
        self._exports_failed = 0
        self._last_success_ns = 0
        self._last_error = ""
        self._last_duration = 0.0
        self._export_started: float | None = None  # monotonic, while a send runs
        self._retry_at = 0.0                        # monotonic; 0: no retry pending
        self._failing_since: float | None = None
        self._drops_seen = 0

    @property
    def name(self) -> str:
        return self.exporter.name

    @property
    def interval(self) -> float:
        """The effective interval: the configured one, or wider under load."""
        return self.governor.interval

    def start(self) -> None:
        """Start the thread; the exporter itself must already be started."""
        self._thread.start()

    def status(self) -> ExporterStatus:
        with self._lock:
            now = time.monotonic()
            exporting_for = now - self._export_started if self._export_started else 0.0
            health, error = self._health, self._last_error
            timeout = self.exporter.export_timeout
            if health is not Health.STOPPED and exporting_for > timeout + OVERRUN_GRACE:
                health = Health.FAILING
                error = (f"export still running after {exporting_for:.0f}s "
                         f"(timeout {timeout:g}s)")
            return ExporterStatus(
                name=self.exporter.name, type=self.exporter.type,
                target=self.exporter.target, health=health, interval=self.interval,
                exports_ok=self._exports_ok, exports_failed=self._exports_failed,
                last_success_ns=self._last_success_ns, last_error=error,
                last_duration=self._last_duration,
                consecutive_failures=self.tracker.consecutive_failures,
                exporting_for=exporting_for, configured_interval=self.configured_interval,
                queued_batches=self.stats.queue_batches,
                points_exported=self.stats.points_exported,
                points_dropped=self.stats.points_dropped,
                retry_in=max(0.0, self._retry_at - now) if self._retry_at else 0.0,
                pull=self.exporter.pull, last_pull_ns=self.stats.last_pull_ns,
                last_puller=self.stats.last_puller)

    def stop(self, final: Snapshot | None, timeout: float) -> bool:
        """Send `final` (unless already accepted), then shut the exporter down;
        returns within `timeout` seconds whatever the collector does: True when
        the worker thread had ended, False when its export was abandoned.

        The final send runs in the worker thread, joined until the deadline less
        a share kept for `shutdown`. If it is still running then, `shutdown` is
        called anyway: a gRPC send is cancelled by it (the channel closes), an
        HTTP one ends at its own timeout in the background (the thread is a
        daemon and never blocks the process from exiting), and its outcome is
        counted but no longer matters.
        """
        deadline = time.monotonic() + timeout
        with self._wake:
            self._stopping = True
            self._final = final
            self._wake.notify_all()
        if self._thread.is_alive():
            reserve = min(SHUTDOWN_MAX, timeout * SHUTDOWN_SHARE)
            self._thread.join(max(0.0, deadline - reserve - time.monotonic()))
            if self._thread.is_alive():
                log.warning("exporter %s: export still running at shutdown; "
                            "it is abandoned", self.name)
        ended = not self._thread.is_alive()
        with self._lock:
            self._health = Health.STOPPED      # from now on the thread exports nothing
            self._retry_at = 0.0
        self.exporter.shutdown(max(0.0, deadline - time.monotonic()))
        return ended

    # --- the worker thread ------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
            with self._lock:
                final = self._final
                given_up = self._health is Health.STOPPED    # stop() did not wait for us
            if final is not None and final.seq != self._accepted_seq and not given_up:
                self.exporter.accept(final)
                self._accepted_seq = final.seq
            if self.exporter.pending and not given_up:
                self._send()
        except Exception as error:
            # Only a bug in get_latest or in this class gets here: record it where
            # the live table shows it rather than let the thread vanish silently.
            log.exception("exporter %s: worker stopped by an internal error", self.name)
            with self._lock:
                self._health = Health.FAILING
                self._last_error = f"worker stopped: {type(error).__name__}: {error}"

    def _loop(self) -> None:
        next_accept = time.monotonic()
        next_send = 0.0
        while True:
            with self._wake:
                while not self._stopping:
                    due = min(next_accept, next_send if self.exporter.pending else next_accept)
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    self._wake.wait(wait)
                if self._stopping:
                    return
            now = time.monotonic()
            if now >= next_accept:
                next_accept = self._accept_newest(now)
            if self.exporter.pending and time.monotonic() >= next_send:
                result = self._send()
                now = time.monotonic()
                if result is ExportResult.SUCCESS:
                    next_send = now        # a backlog left: on with it at once
                elif self.exporter.failure is not None and self.exporter.failure.retryable:
                    next_send = now + self.backoff.next_wait(self.exporter.failure.retry_after)
                else:                          # refused for good: not before the next interval
                    next_send = max(next_accept, now + self.governor.interval)
                with self._lock:
                    self._retry_at = next_send if result is ExportResult.FAILURE else 0.0

    def _accept_newest(self, now: float) -> float:
        """Accept the newest snapshot if it is new; when the next look is due."""
        snapshot = self._get_latest()
        if snapshot is None or snapshot.seq == self._accepted_seq:
            return now + self._poll
        self.exporter.accept(snapshot)
        self._accepted_seq = snapshot.seq
        return now + (self._poll if self.exporter.pull else self.governor.interval)

    def _send(self) -> ExportResult:
        started = time.monotonic()
        with self._lock:
            self._export_started = started
        error_for_log: BaseException | None = None
        points_before = self.stats.points_exported
        queued_before = self.stats.queue_batches
        try:
            result = self.exporter.send(self.exporter.export_timeout)
            failure = self.exporter.failure if result is ExportResult.FAILURE else None
        except Exception as error:
            # An exporter's bug must not end its worker: it counts as a failed
            # export, its message becomes the status' error, and its traceback is
            # logged as an error (again at debug level while it repeats itself).
            result = ExportResult.FAILURE
            failure = ExportFailure(self.exporter.redact(f"{type(error).__name__}: {error}"),
                                    "exception")
            self.exporter.failure = failure
            error_for_log = error
        duration = time.monotonic() - started
        delivered = self.stats.points_exported - points_before
        outcome = "success" if result is ExportResult.SUCCESS else "failure"
        self.stats.attempt(outcome, failure.reason if failure else "", duration, 0)
        change = None
        if result is ExportResult.SUCCESS and not self.exporter.pull:
            # A send that drains a backlog carries several intervals at once:
            # what one interval costs is the load, not how long the backlog took.
            intervals = max(1, queued_before - self.stats.queue_batches)
            change = self.governor.observe(duration, self._sampler_share(), intervals)
        drops = self.stats.dropped_by_reason()
        losses = sum(drops.get(reason, 0) for reason in LOSSES)
        with self._lock:
            before = self._health
            failures = self.tracker.consecutive_failures
            self._export_started = None
            self._last_duration = duration
            if result is ExportResult.SUCCESS:
                self._exports_ok += 1
                self._last_success_ns = time.time_ns()
                troubled = (losses > self._drops_seen
                            or self.governor.interval > self.configured_interval)
                after = self.tracker.succeeded(troubled=troubled,
                                               backlog=self.exporter.pending)
                if after is Health.HEALTHY:
                    self._last_error = ""
                elif self.exporter.trouble:
                    self._last_error = self.exporter.trouble
                self.backoff.reset()
            else:
                assert failure is not None
                self._exports_failed += 1
                self._last_error = failure.message
                after = self.tracker.failed(failure)
            self._drops_seen = losses
            if before is not Health.STOPPED:     # a send abandoned by stop() ended
                self._health = after
            after = self._health
            if after is Health.FAILING and self._failing_since is None:
                self._failing_since = started
            failing_for = (time.monotonic() - self._failing_since
                           if self._failing_since is not None else 0.0)
            if after in (Health.HEALTHY, Health.DEGRADED):
                self._failing_since = None
        self.stats.health = after.value
        self.stats.interval = self.governor.interval
        if error_for_log is not None:
            repeated = failure is not None and failure.message == self._internal_error
            (log.debug if repeated else log.error)(
                "exporter %s: internal error in export (a bug; the export counts as "
                "failed and is retried)", self.name, exc_info=error_for_log)
            self._internal_error = failure.message if failure is not None else ""
        if change is not None:
            log.warning("exporter %s: interval %s from %gs to %gs: %s", self.name,
                        "widened" if change.after > change.before else "narrowed",
                        change.before, change.after, change.why)
        self._log_health(before, after, failure, failures, failing_for, delivered)
        return result

    def _log_health(self, before: Health, after: Health, failure: ExportFailure | None,
                    failures: int, failing_for: float, delivered: int) -> None:
        if before is after or after is Health.STOPPED:
            return
        self._on_health(HealthChange(before, after, failure))
        who = f"exporter {self.name} ({self.exporter.type} {self.exporter.target})"
        if after is Health.FAILING and failure is not None and not failure.retryable:
            log.error("%s: failing: %s (settings at %s)", who, failure.message,
                      self.exporter.where_configured())
        elif after is Health.FAILING:
            reason = failure.message if failure else self._last_error
            log.warning("%s: failing: %s (%d failed attempts in a row; retrying at most "
                        "%gs apart)", who, reason, self.tracker.consecutive_failures,
                        self.retry.max)
        elif after is Health.DEGRADED:
            log.warning("%s: degraded: %s", who, self._degraded_reason(failure))
        elif after is Health.RECOVERING:
            backlog = self.stats.queue_batches
            log.info("%s: recovering: delivered again after %d failed attempt%s over %.0fs%s",
                     who, failures, "" if failures == 1 else "s", failing_for,
                     f"; {backlog} queued interval{'s' if backlog != 1 else ''} to send"
                     if backlog else "")
        elif after is Health.HEALTHY and before is not Health.STARTING:
            log.info("%s: healthy again", who)
        else:
            log.debug("%s: first export delivered (%d points)", who, delivered)

    def _degraded_reason(self, failure: ExportFailure | None) -> str:
        if failure is not None:
            return failure.message + (" (retrying)" if failure.retryable else "")
        if self.exporter.trouble:
            return self.exporter.trouble
        if self.exporter.pending:
            return f"{self.stats.queue_batches} queued intervals to send"
        if self.governor.interval > self.configured_interval:
            return f"interval widened to {self.governor.interval:g}s by load"
        return "points were dropped (see ig_metrics.export.points.dropped)"
