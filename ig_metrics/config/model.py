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
REDACTED = "***"
# Settings whose every value is secret, whatever `secrets` says.
ALWAYS_SECRET_SETTINGS = frozenset({"headers"})


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
class PrometheusSettings:
    host: str = DEFAULT_PROMETHEUS_LISTEN[0]
    port: int = DEFAULT_PROMETHEUS_LISTEN[1]

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def as_written(self) -> dict[str, Any]:
        return {"listen": self.listen}


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

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {"endpoint": self.endpoint, "insecure": self.insecure}
        if self.tls.as_written():
            written["tls"] = self.tls.as_written()
        written.update(headers=dict(self.headers), timeout=format_duration(self.timeout),
                       compression=self.compression, temporality=self.temporality)
        return written


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    format: str = "text"                   # "text" | "json"

    def as_written(self) -> dict[str, Any]:
        return {"format": self.format}


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
class ProfileConfig:
    name: str
    description: str
    exporters: tuple[str, ...]
    interval: float | None
    file: str
    line: int
    exporter_lines: tuple[int, ...] = ()   # the line of each name in `exporters`
    secrets: frozenset[str] = frozenset()  # "interval", "description" if from env

    def redacted(self) -> dict[str, Any]:
        """Plain data for display and logs, with values from env replaced by ***."""
        interval = None if self.interval is None else format_duration(self.interval)
        return {
            "name": self.name,
            "description": _redact_value(self.description, "description", self.secrets),
            "exporters": list(self.exporters),
            "interval": _redact_value(interval, "interval", self.secrets),
            "file": self.file,
            "line": self.line,
        }


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
    """An exporter as one run uses it: template plus the interval it runs at."""

    template: ExporterTemplate
    interval: float

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
