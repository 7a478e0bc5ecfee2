"""What every exporter type provides, shaped like the OpenTelemetry SDK's
exporters (export / force_flush / shutdown, each bounded by a timeout), and the
status a supervised exporter reports to the live table and the logs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
import enum
from typing import Any, Generic, TypeVar

from ig_metrics.config.model import REDACTED, ExporterSettings, ResolvedExporter
from ig_metrics.pipeline.snapshot import Snapshot

# The longest an export may take for exporters that have no `timeout` setting
# (prometheus swaps a reference, console prints).
DEFAULT_EXPORT_TIMEOUT = 5.0

SettingsT = TypeVar("SettingsT", bound=ExporterSettings)


class ExportResult(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"


class ExporterStartError(Exception):
    """An exporter that cannot start (port in use, bad certificate...); the
    message names the exporter and what to do."""


class Exporter(ABC, Generic[SettingsT]):
    """One configured exporter. `start` binds or connects; `export` delivers
    one snapshot and returns within `timeout` seconds.

    Calls to `export` are never concurrent (one worker thread per exporter);
    `shutdown` may be called while an export is still running, and should make
    it return early where the transport allows.
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
        # Why the last export failed, fit for a person and a log: never a
        # header value or other secret. Set whenever export returns FAILURE.
        self.last_failure = ""

    @classmethod
    def from_config(cls, config: ResolvedExporter, *, console: Any = None) -> Exporter:
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

    def start(self) -> None:
        """Acquire what the exporter needs; raise ExporterStartError on failure."""

    @abstractmethod
    def export(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        ...

    def force_flush(self, timeout: float) -> bool:
        return True

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
    STARTING = "starting"
    HEALTHY = "healthy"
    FAILING = "failing"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ExporterStatus:
    """A supervised exporter's state as the live table and logs show it."""

    name: str
    type: str
    target: str
    health: Health
    interval: float
    exports_ok: int = 0
    exports_failed: int = 0
    last_success_ns: int = 0        # wall clock of the last successful export (0: never)
    last_error: str = ""
    last_duration: float = 0.0      # seconds the last export took
    consecutive_failures: int = 0
    exporting_for: float = 0.0      # seconds the export under way has run (0: none)
