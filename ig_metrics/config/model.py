"""Typed, validated configuration: what the rest of ig-metrics is given once a
profiles directory has been loaded (each exporter type's own settings class is
in its module in exporters/; what they all have is here). Nothing here parses
YAML."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ig_metrics.config.durations import format_duration

DEFAULT_INTERVAL = 10.0          # seconds, when neither exporter nor profile sets one
DEFAULT_POINTS_PER_EXPORT = 1000
DEFAULT_EXPORT_SHARE = 0.5       # of the interval an export may take before it widens
DEFAULT_MAX_INTERVAL_FACTOR = 8  # load never widens an interval beyond 8 times itself
DEFAULT_SAMPLER_MAX_SERIES = 250_000   # series the sampler keeps apart (its memory budget)
DEFAULT_IDLE_EXPIRY = 600.0      # seconds a series may stay unchanged before it is dropped
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
    column: int = 0              # 1-based, in characters; 0 when not known

    def __str__(self) -> str:
        """FILE:LINE[:COL]: message, on one line: what the file holds is echoed with
        its invisible characters (line breaks, escapes, format characters) escaped."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{_visible(self.message)}"


def _visible(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
                   for char in text)


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


class ExporterSettings(Protocol):
    """What every exporter type's settings class has (each type's module
    declares its own: exporters/prometheus/exporter.py's PrometheusSettings...)."""

    @property
    def limits(self) -> LimitSettings: ...

    def as_written(self) -> dict[str, Any]:
        """The settings keyed as in a profiles file, defaults filled in."""
        ...


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
    become alike are summed) and whether pod labels are attributes.

    A gadget's opt-in attributes (tcp's process.pid: one series per process
    instance, so short-lived processes each add their own) are kept only
    where the profile names them in full, in `opt_in` or in `include`; a
    prefix ('process.*') never opts in."""

    include: tuple[AttributeName, ...] = ()    # empty: every attribute kept by default
    exclude: tuple[AttributeName, ...] = ()
    opt_in: tuple[AttributeName, ...] = ()
    pod_labels: bool = False
    file: str = ""                             # where it was written, for messages

    def keeps(self, attribute: str, opt_in: bool = False) -> bool:
        """Whether series keep `attribute`; `opt_in`: the gadget marks it opt-in."""
        if opt_in and not any(name.name == attribute for name in (*self.opt_in, *self.include)):
            return False
        if self.include and not any(name.matches(attribute) for name in self.include):
            return False
        return not any(name.matches(attribute) for name in self.exclude)

    @property
    def active(self) -> bool:
        """Whether it names attributes (which a run checks its gadgets have)."""
        return bool(self.include or self.exclude or self.opt_in)

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {}
        for key, names in (("include", self.include), ("exclude", self.exclude),
                           ("opt_in", self.opt_in)):
            if names:
                written[key] = [name.name for name in names]
        if self.pod_labels:
            written["pod_labels"] = True
        return written


# What a profile without `attributes:` keeps: every attribute but the opt-in ones.
DEFAULT_ATTRIBUTES = AttributeSelection()


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
    attributes: AttributeSelection = DEFAULT_ATTRIBUTES
    gadgets: tuple[str, ...] = ()          # what `run -p NAME` runs without --gadget

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
        if self.gadgets:
            redacted["gadgets"] = list(self.gadgets)
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
    attributes: AttributeSelection = DEFAULT_ATTRIBUTES
    gadgets: tuple[str, ...] = ()          # what `run -p NAME` runs without --gadget
