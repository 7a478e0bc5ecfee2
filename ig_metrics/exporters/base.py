"""What every exporter type provides, shaped like the OpenTelemetry SDK's
exporters (export / force_flush / shutdown, each bounded by a timeout), why an
export failed, and the status a supervised exporter reports to the live table
and the logs."""

from __future__ import annotations

import enum
import logging
from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from ig_metrics.config.fields import Field
from ig_metrics.config.model import REDACTED, ExporterSettings, ResolvedExporter
from ig_metrics.config.rules import Rule
from ig_metrics.exporters.delivery.limits import SeriesLimiter
from ig_metrics.exporters.delivery.telemetry import ExporterStats
from ig_metrics.model.snapshot import Snapshot

# The longest an export may take for exporters that have no `timeout` setting
# (prometheus swaps a reference, console prints).
DEFAULT_EXPORT_TIMEOUT = 5.0

SettingsT = TypeVar("SettingsT", bound=ExporterSettings)
log = logging.getLogger("ig_metrics.exporters")


class ExportResult(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class ExportFailure:
    """Why an export failed, for people (`message`, secrets already hidden), for
    metrics (`reason`: a short stable label such as "unavailable" or "http_503",
    the `error.type` attribute) and for the retry schedule.

    `batch_refused`: the receiver refused what the request holds (bad or too old
    data, a kind it does not take), not who sent it or where: that batch is
    dropped, and the batches behind it are sent at once, since they may well
    be taken."""

    message: str
    reason: str
    retryable: bool = True
    retry_after: float | None = None      # seconds the collector asked us to wait
    batch_refused: bool = False


class ExporterStartError(Exception):
    """An exporter that cannot start (port in use, bad certificate...); the
    message names the exporter and what to do."""


class Exporter(ABC, Generic[SettingsT]):
    """One configured exporter. `start` binds or connects; `export` delivers
    one snapshot and returns within `timeout` seconds.

    A supervisor splits `export` in two: `accept` takes each new snapshot at
    the exporter's interval (cheap: a delta exporter queues the interval's
    changes), `send` delivers what is pending and may be retried. `export` is
    both at once. Calls are never concurrent (one worker thread per exporter);
    `shutdown` may be called while a send is still running, and should make it
    return early where the transport allows.
    """

    settings_type: type[ExporterSettings]     # what config.settings must be
    # A pull exporter only keeps the newest snapshot for its readers: it is
    # handed every new one at once, however short the exporter's interval.
    pull = False

    def __init__(self, config: ResolvedExporter) -> None:
        if not isinstance(config.settings, self.settings_type):
            raise TypeError(f"exporter {config.name}: {type(self).__name__} needs "
                            f"{self.settings_type.__name__}, not "
                            f"{type(config.settings).__name__}")
        self.config = config
        # Why the last send failed; set whenever it returns FAILURE.
        self.failure: ExportFailure | None = None
        # What the receiver refused of a send that succeeded all the same (points
        # of a partial success, a batch it will never take), in one line with
        # what to do: the reason the exporter shows as degraded. "" when nothing.
        self.trouble = ""
        # What it did, for self-metrics and the live table.
        self.stats = ExporterStats(config.name, config.type)
        self.limiter = SeriesLimiter(config.settings.limits)
        self._accepted: Snapshot | None = None
        self._delivered_seq: int | None = None

    @classmethod
    def from_config(cls, config: ResolvedExporter, *, console: Any = None) -> Self:
        """What the factory calls; `console` only matters to exporters that print."""
        return cls(config)

    @property
    def settings(self) -> SettingsT:
        return self.config.settings  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def type(self) -> str:
        return self.config.type

    @property
    def target(self) -> str:
        """Where it sends or serves, for messages: an endpoint or listen address."""
        return ""

    @property
    def export_timeout(self) -> float:
        """The `timeout` a supervisor passes to `export`, in seconds."""
        return DEFAULT_EXPORT_TIMEOUT

    @property
    def last_failure(self) -> str:
        """Why the last send failed, fit for a person and a log: never a header
        value or other secret ("" after a success)."""
        return self.failure.message if self.failure else ""

    def start(self) -> None:
        """Acquire what the exporter needs; raise ExporterStartError on failure."""

    def accept(self, snapshot: Snapshot) -> None:
        """Take `snapshot`, within this exporter's limits, as what to send next
        (the newest one wins)."""
        self._accepted = self.within_limits(snapshot)

    def within_limits(self, snapshot: Snapshot) -> Snapshot:
        """`snapshot` with each metric's series beyond `limits.max_series` folded
        into its overflow series; the folded points counted, the first overflow
        of each metric logged."""
        limited, folded, overflowing = self.limiter.apply(snapshot)
        self.stats.dropped("overflow", folded)
        for metric in overflowing:
            log.warning("exporter %s: metric %s has more series than limits.max_series "
                        "allows (%s); the others are folded into one series with "
                        "otel.metric.overflow=true", self.name, metric,
                        self.config.settings.limits.series_limit(metric))
        return limited

    @property
    def pending(self) -> bool:
        """Something accepted is not delivered yet."""
        return self._accepted is not None and self._accepted.seq != self._delivered_seq

    def send(self, timeout: float) -> ExportResult:
        """Deliver what is pending; each request bounded by `timeout` seconds."""
        snapshot = self._accepted
        if snapshot is None or not self.pending:
            return ExportResult.SUCCESS
        self.failure = None
        self.trouble = ""
        result = self.deliver(snapshot, timeout)
        if result is ExportResult.SUCCESS:
            self._delivered_seq = snapshot.seq
            self.failure = None
        elif self.failure is None:
            self.failure = ExportFailure("export failed", "unknown")
        return result

    def deliver(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        """Deliver one snapshot (for exporters that keep no queue of their own)."""
        raise NotImplementedError

    def export(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        """`accept` then `send`: what a caller without a supervisor uses."""
        self.accept(snapshot)
        return self.send(timeout)

    def force_flush(self, timeout: float) -> bool:
        return self.send(timeout) is ExportResult.SUCCESS

    def shutdown(self, timeout: float) -> None:
        """Release everything; must return within `timeout` seconds."""

    def shown(self, setting: str, value: str) -> str:
        """`value` of `setting` ("endpoint", "tls.ca_file"...) as messages may show
        it: *** when it came from the environment or is a header value."""
        return REDACTED if setting in self.config.template.secrets else value

    def redact(self, text: str) -> str:
        """`text` (an error message) with this exporter's secrets replaced by ***."""
        return text

    def where_configured(self) -> str:
        """FILE:LINE of this exporter's template, for messages that say what to edit."""
        template = self.config.template
        return f"{template.file}:{template.line}" if template.line else template.file


class Health(enum.Enum):
    """starting -> healthy; degraded while exports are late or lossy but flow;
    failing after repeated or permanent failures; recovering once deliveries
    resume, until the backlog is sent; stopped at the end of the run."""

    STARTING = "starting"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILING = "failing"
    RECOVERING = "recovering"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ExporterStatus:
    """A supervised exporter's state as the live table and logs show it."""

    name: str
    type: str
    target: str
    health: Health
    interval: float                 # the effective interval, widened by load or not
    exports_ok: int = 0
    exports_failed: int = 0
    last_success_ns: int = 0        # wall clock of the last successful export (0: never)
    last_error: str = ""
    last_duration: float = 0.0      # seconds the last export took
    consecutive_failures: int = 0
    exporting_for: float = 0.0      # seconds the export under way has run (0: none)
    configured_interval: float = 0.0
    queued_batches: int = 0         # delta intervals waiting to be sent
    points_exported: int = 0
    points_dropped: int = 0         # overflow, queue full, rejected, expired
    retry_in: float = 0.0           # seconds until the next attempt after a failure (0: none)
    pull: bool = False              # read by scrapers rather than pushed
    last_pull_ns: int = 0           # a pull exporter: wall clock of its last scrape (0: never)
    last_puller: str = ""           # and the address that scraped it


@dataclass(frozen=True)
class ExporterType:
    """One `type:` of exporter, as its module declares it in TYPE: the table of
    its settings, how they become its settings object, the checks across
    settings, and the class that exports (exporters/registry.py lists them)."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    build: Callable[[Mapping[str, Any]], ExporterSettings]
    implementation: type[Exporter[Any]]
    rules: tuple[Rule, ...] = ()
    address_key: str | None = None    # the setting `exporters list` shows as the address
    fixed_address: str = ""           # shown instead when there is no such setting
