"""One thread per exporter: exports the latest snapshot at the exporter's own
interval, keeps its health for the live table, logs each change of health once,
and stops within a deadline even when the collector hangs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ig_metrics.exporters.base import (
    Exporter, ExporterStatus, ExportResult, Health,
)
from ig_metrics.pipeline.snapshot import Snapshot

log = logging.getLogger("ig_metrics.exporters")

POLL_SECONDS = 0.05        # how often a worker looks for a first or a newer snapshot
OVERRUN_GRACE = 1.0        # an export this far past its timeout shows as failing
SHUTDOWN_SHARE = 0.25      # of stop()'s timeout, kept for shutdown after the final export
SHUTDOWN_MAX = 1.0         # ... but never more than this many seconds


class ExporterWorker:
    """Runs `exporter` in its own thread so that a slow or hung exporter delays
    neither the sampler nor the other exporters.

    Each export is of the newest snapshot `get_latest` returns, at most once per
    `interval` and only when it is newer than the last one delivered (a failed
    one is tried again at the next interval); a pull exporter gets every new
    snapshot at once, since handing it one only swaps what its readers see. Exports run in the worker thread
    and are bounded by the exporter itself (`export_timeout`, which the SDK's
    OTLP exporters enforce); one that overruns it shows as failing in `status()`.
    """

    def __init__(self, exporter: Exporter, interval: float,
                 get_latest: Callable[[], Snapshot | None], *,
                 poll: float = POLL_SECONDS) -> None:
        self.exporter = exporter
        self.interval = interval
        self._get_latest = get_latest
        self._poll = poll
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name=f"exporter-{exporter.name}",
                                        daemon=True)
        self._stopping = False
        self._final: Snapshot | None = None
        self._delivered_seq: int | None = None     # seq of the last snapshot delivered
        # What status() reports; written under _lock.
        self._health = Health.STARTING
        self._exports_ok = 0
        self._exports_failed = 0
        self._consecutive_failures = 0
        self._last_success_ns = 0
        self._last_error = ""
        self._last_duration = 0.0
        self._export_started: float | None = None  # monotonic, while an export runs

    @property
    def name(self) -> str:
        return self.exporter.name

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
                consecutive_failures=self._consecutive_failures,
                exporting_for=exporting_for)

    def stop(self, final: Snapshot | None, timeout: float) -> None:
        """Export `final` (unless already delivered), then shut the exporter down;
        returns within `timeout` seconds whatever the collector does.

        The final export runs in the worker thread, joined until the deadline less
        a share kept for `shutdown`. If it is still running then, `shutdown` is
        called anyway: an SDK gRPC export is cancelled by it (the channel closes),
        an HTTP one ends at its own timeout in the background (the thread is a
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
        with self._lock:
            self._health = Health.STOPPED      # from now on the thread exports nothing
        self.exporter.shutdown(max(0.0, deadline - time.monotonic()))

    # --- the worker thread ------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
            with self._lock:
                final = self._final
                given_up = self._health is Health.STOPPED    # stop() did not wait for us
            if final is not None and final.seq != self._delivered_seq and not given_up:
                self._export(final)
        except Exception as error:
            # Only a bug in get_latest or in this class gets here: record it where
            # the live table shows it rather than let the thread vanish silently.
            log.exception("exporter %s: worker stopped by an internal error", self.name)
            with self._lock:
                self._health = Health.FAILING
                self._last_error = f"worker stopped: {type(error).__name__}: {error}"

    def _loop(self) -> None:
        next_due = time.monotonic()
        while True:
            with self._wake:
                while not self._stopping and (wait := next_due - time.monotonic()) > 0:
                    self._wake.wait(wait)
                if self._stopping:
                    return
            snapshot = self._get_latest()
            if snapshot is None or snapshot.seq == self._delivered_seq:
                next_due = time.monotonic() + self._poll
                continue
            started = time.monotonic()
            self._export(snapshot)
            spacing = self._poll if self.exporter.pull else self.interval
            next_due = max(started + spacing, time.monotonic())

    def _export(self, snapshot: Snapshot) -> None:
        started = time.monotonic()
        with self._lock:
            self._export_started = started
        error_for_log: BaseException | None = None
        try:
            result = self.exporter.export(snapshot, self.exporter.export_timeout)
            reason = self.exporter.last_failure if result is ExportResult.FAILURE else ""
        except Exception as error:
            # An exporter's bug must not end its worker: it counts as a failed
            # export, its message becomes the status' error, its traceback is
            # logged at debug level.
            result = ExportResult.FAILURE
            reason = self.exporter.redact(f"{type(error).__name__}: {error}")
            error_for_log = error
        duration = time.monotonic() - started
        with self._lock:
            before = self._health
            self._export_started = None
            self._last_duration = duration
            failures = self._consecutive_failures
            if result is ExportResult.SUCCESS:
                self._delivered_seq = snapshot.seq
                self._exports_ok += 1
                self._last_success_ns = time.time_ns()
                self._consecutive_failures = 0
            else:
                self._exports_failed += 1
                self._consecutive_failures += 1
                self._last_error = reason or "export failed"
            if before is not Health.STOPPED:     # an export abandoned by stop() ended
                self._health = (Health.HEALTHY if result is ExportResult.SUCCESS
                                else Health.FAILING)
            after = self._health
        if error_for_log is not None:
            log.debug("exporter %s: export raised", self.name, exc_info=error_for_log)
        if before is after:
            return
        if after is Health.FAILING:
            log.warning("exporter %s (%s %s): failing: %s", self.name, self.exporter.type,
                        self.exporter.target, reason or "export failed")
        elif before is Health.FAILING:
            log.info("exporter %s (%s %s): recovered after %d failed export%s",
                     self.name, self.exporter.type, self.exporter.target, failures,
                     "" if failures == 1 else "s")
        else:
            log.debug("exporter %s: first export delivered", self.name)
