"""Typed, validated configuration: what the rest of ig-metrics is given once a
profiles directory has been loaded. Nothing here parses YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ig_metrics.config.durations import format_duration

DEFAULT_INTERVAL = 10.0          # seconds, when neither exporter nor profile sets one
DEFAULT_PROMETHEUS_LISTEN = ("127.0.0.1", 9464)
DEFAULT_OTLP_TIMEOUT = 10.0      # seconds
DEFAULT_RETRY_INITIAL = 1.0      # seconds before the first retry
DEFAULT_RETRY_MAX = 30.0         # the longest wait between two attempts
DEFAULT_QUEUE_BATCHES = 360      # an hour of 10 s delta intervals
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
DEFAULT_POINTS_PER_EXPORT = 1000
DEFAULT_EXPORT_SHARE = 0.5       # of the interval an export may take before it widens
DEFAULT_MAX_INTERVAL_FACTOR = 8  # load never widens an interval beyond 8 times itself
DEFAULT_SAMPLER_MAX_SERIES = 250_000   # series the sampler keeps apart (its memory budget)
REDACTED = "***"
# Settings whose every value is secret, whatever `secrets` says.
ALWAYS_SECRET_SETTINGS = frozenset({"headers", "basic_auth"})


@dataclass(frozen=True, slots=True)
class Problem:
    """A mistake (or warning) in a user's file, with the place it was found."""

    file: str
    line: int                    # 1-based; 0 when the problem concerns a whole file
    message: str
    severity: str = "error"      # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def as_written(self) -> dict[str, str]:
        files = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        return {key: str(path) for key, path in files.items() if path is not None}


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Quotas of one exporter (`limits:`); every exporter type has them."""

    max_series: int | None = None          # per metric, the overflow series included
    max_series_by_metric: tuple[tuple[str, int], ...] = ()
    max_points_per_export: int = DEFAULT_POINTS_PER_EXPORT   # OTLP: points per request
    min_interval: float | None = None      # seconds; the interval is never shorter
    max_interval: float | None = None      # seconds; None: DEFAULT_MAX_INTERVAL_FACTOR x interval
    max_export_share: float = DEFAULT_EXPORT_SHARE

    def series_limit(self, metric: str) -> int | None:
        """The most series `metric` may have, the overflow series included."""
        for name, limit in self.max_series_by_metric:
            if name == metric:
                return limit
        return self.max_series

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {}
        if self.max_series is not None:
            written["max_series"] = self.max_series
        if self.max_series_by_metric:
            written["max_series_by_metric"] = dict(self.max_series_by_metric)
        written["max_points_per_export"] = self.max_points_per_export
        for key, seconds in (("min_interval", self.min_interval),
                             ("max_interval", self.max_interval)):
            if seconds is not None:
                written[key] = format_duration(seconds)
        written["max_export_share"] = f"{self.max_export_share * 100:g}%"
        return written


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How a push exporter retries (`retry:`): exponential backoff with jitter."""

    initial: float = DEFAULT_RETRY_INITIAL     # seconds
    max: float = DEFAULT_RETRY_MAX             # seconds
    max_elapsed: float | None = None           # seconds a batch is retried; None: no limit

    def as_written(self) -> dict[str, Any]:
        written = {"initial": format_duration(self.initial), "max": format_duration(self.max)}
        if self.max_elapsed is not None:
            written["max_elapsed"] = format_duration(self.max_elapsed)
        return written


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Where a delta exporter keeps the intervals it could not send yet (`queue:`)."""

    max_batches: int = DEFAULT_QUEUE_BATCHES
    max_bytes: int = DEFAULT_QUEUE_BYTES
    dir: Path | None = None                    # None: in memory only

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {"max_batches": self.max_batches,
                                   "max_bytes": self.max_bytes}
        if self.dir is not None:
            written["dir"] = str(self.dir)
        return written


@dataclass(frozen=True, slots=True)
class ServerTlsSettings:
    """TLS of the Prometheus endpoint, as in Prometheus' own web config."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None         # set: clients must present a certificate

    def as_written(self) -> dict[str, str]:
        written = {"cert_file": str(self.cert_file), "key_file": str(self.key_file)}
        if self.client_ca_file is not None:
            written["client_ca_file"] = str(self.client_ca_file)
        return written


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    host: str = DEFAULT_PROMETHEUS_LISTEN[0]
    port: int = DEFAULT_PROMETHEUS_LISTEN[1]
    tls: ServerTlsSettings | None = None
    # user name -> bcrypt hash of the password, as Prometheus' basic_auth_users
    basic_auth: tuple[tuple[str, str], ...] = ()
    histograms: str = "both"               # protobuf scrapes: "classic" | "native" | "both"
    limits: LimitSettings = field(default_factory=LimitSettings)

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {"listen": self.listen}
        if self.tls is not None:
            written["tls"] = self.tls.as_written()
        if self.basic_auth:
            written["basic_auth"] = dict(self.basic_auth)
        written["histograms"] = self.histograms
        written["limits"] = self.limits.as_written()
        return written


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


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    format: str = "text"                   # "text" | "json"
    limits: LimitSettings = field(default_factory=LimitSettings)

    def as_written(self) -> dict[str, Any]:
        return {"format": self.format, "limits": self.limits.as_written()}


ExporterSettings = PrometheusSettings | OtlpSettings | ConsoleSettings


@dataclass(frozen=True, slots=True)
class ExporterTemplate:
    """A named exporter from an `exporters:` section, validated."""

    name: str
    type: str                              # prometheus | otlp-grpc | otlp-http | console
    settings: ExporterSettings
    interval: float | None                 # seconds; None = the profile's or the default
    file: str
    line: int
    # Setting paths ("headers.x-tenant", "endpoint") whose values must never be
    # shown: header values and anything that came from ${env:...}.
    secrets: frozenset[str] = frozenset()
    description: str = ""

    def redacted(self) -> dict[str, Any]:
        """Plain data for display and logs, with every secret replaced by ***.

        Settings are keyed as in a profiles file (durations as "10s"), defaults
        filled in.
        """
        interval = None if self.interval is None else format_duration(self.interval)
        return {
            "name": self.name,
            "type": self.type,
            "description": _redact_value(self.description, "description", self.secrets),
            "interval": _redact_value(interval, "interval", self.secrets),
            "settings": _redact_tree(self.settings.as_written(), "", self.secrets),
            "file": self.file,
            "line": self.line,
        }


@dataclass(frozen=True, slots=True)
class AttributeName:
    """One name of an `attributes:` list, with the line it was written on; a
    name ending in '*' stands for every name with that prefix."""

    name: str
    line: int = 0

    def matches(self, attribute: str) -> bool:
        if self.name.endswith("*"):
            return attribute.startswith(self.name[:-1])
        return attribute == self.name


@dataclass(frozen=True, slots=True)
class AttributeSelection:
    """A profile's `attributes:`: which attributes series keep (series that
    become alike are summed) and whether pod labels are attributes."""

    include: tuple[AttributeName, ...] = ()    # empty: every attribute
    exclude: tuple[AttributeName, ...] = ()
    pod_labels: bool = False
    file: str = ""                             # where it was written, for messages

    def keeps(self, attribute: str) -> bool:
        if self.include and not any(name.matches(attribute) for name in self.include):
            return False
        return not any(name.matches(attribute) for name in self.exclude)

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {}
        if self.include:
            written["include"] = [name.name for name in self.include]
        if self.exclude:
            written["exclude"] = [name.name for name in self.exclude]
        if self.pod_labels:
            written["pod_labels"] = True
        return written


ALL_ATTRIBUTES = AttributeSelection()


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    name: str
    description: str
    exporters: tuple[str, ...]
    interval: float | None
    file: str
    line: int
    exporter_lines: tuple[int, ...] = ()   # the line of each name in `exporters`
    secrets: frozenset[str] = frozenset()  # "interval", "description" if from env
    sampler_max_series: int | None = None  # the sampler's memory budget; None: its default
    attributes: AttributeSelection = ALL_ATTRIBUTES

    def redacted(self) -> dict[str, Any]:
        """Plain data for display and logs, with values from env replaced by ***."""
        interval = None if self.interval is None else format_duration(self.interval)
        redacted = {
            "name": self.name,
            "description": _redact_value(self.description, "description", self.secrets),
            "exporters": list(self.exporters),
            "interval": _redact_value(interval, "interval", self.secrets),
            "file": self.file,
            "line": self.line,
        }
        if self.attributes.as_written():
            redacted["attributes"] = self.attributes.as_written()
        return redacted


def _redact_value(value: Any, path: str, secrets: frozenset[str]) -> Any:
    return REDACTED if path in secrets and value not in (None, "") else value


def _redact_tree(tree: dict[str, Any], prefix: str, secrets: frozenset[str]) -> dict[str, Any]:
    redacted: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if path in ALWAYS_SECRET_SETTINGS and isinstance(value, dict):
            redacted[key] = {name: REDACTED for name in value}
        elif isinstance(value, dict) and path not in secrets:
            redacted[key] = _redact_tree(value, f"{path}.", secrets)
        else:
            redacted[key] = _redact_value(value, path, secrets)
    return redacted


@dataclass(frozen=True, slots=True)
class ResolvedExporter:
    """An exporter as one run uses it: template plus the interval it runs at
    (never below its `limits.min_interval`; `requested_interval` is what the
    flag, template or profile asked for)."""

    template: ExporterTemplate
    interval: float
    requested_interval: float | None = None

    @property
    def limits(self) -> LimitSettings:
        return self.template.settings.limits

    @property
    def max_interval(self) -> float:
        """The widest load may make the interval."""
        ceiling = self.limits.max_interval
        return max(self.interval, ceiling if ceiling is not None
                   else self.interval * DEFAULT_MAX_INTERVAL_FACTOR)

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def type(self) -> str:
        return self.template.type

    @property
    def settings(self) -> ExporterSettings:
        return self.template.settings


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    exporters: tuple[ResolvedExporter, ...]
    file: str
    sampler_max_series: int | None = None
    attributes: AttributeSelection = ALL_ATTRIBUTES
