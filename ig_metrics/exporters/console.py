"""The console exporter: prints every export, one line per series, as text for
people or as JSON lines for tools."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self, TextIO

from rich.console import Console

from ig_metrics.config.fieldkinds import Choice
from ig_metrics.config.fields import Field
from ig_metrics.config.model import LimitSettings, ResolvedExporter
from ig_metrics.config.rules import COMMON_RULES
from ig_metrics.config.sections import build_limits, limits_field
from ig_metrics.exporters.base import Exporter, ExporterType, ExportFailure, ExportResult
from ig_metrics.model.snapshot import AttrValue, HistogramValue, Snapshot, bucket_quantile


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    format: str = "text"                   # "text" | "json"
    limits: LimitSettings = field(default_factory=LimitSettings)

    def as_written(self) -> dict[str, Any]:
        return {"format": self.format, "limits": self.limits.as_written()}


def build_console(values: Mapping[str, Any]) -> ConsoleSettings:
    return ConsoleSettings(format=values["format"], limits=build_limits(values))


_NEEDS_QUOTES = frozenset(' ,{}="\t\n')


class ConsoleExporter(Exporter[ConsoleSettings]):
    """Writes each snapshot to `stream`: a text stream (None: the sys.stdout of
    the moment) or a Rich Console, through which lines appear above a live view."""

    settings_type = ConsoleSettings

    def __init__(self, config: ResolvedExporter,
                 stream: TextIO | Console | None = None) -> None:
        super().__init__(config)
        self.stream = stream

    @classmethod
    def from_config(cls, config: ResolvedExporter, *, console: Any = None) -> Self:
        return cls(config, stream=console)

    @property
    def target(self) -> str:
        if self.stream is None:
            return "stdout"
        if isinstance(self.stream, Console):
            return "stderr" if self.stream.stderr else "stdout"
        return getattr(self.stream, "name", "") or "stream"

    def deliver(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        lines = (json_lines(snapshot) if self.settings.format == "json"
                 else text_lines(snapshot))
        if not lines:
            return ExportResult.SUCCESS
        if isinstance(self.stream, Console):
            self.stream.out("\n".join(lines), highlight=False)
            self.stats.points_exported += snapshot.point_count
            return ExportResult.SUCCESS
        stream = self.stream if self.stream is not None else sys.stdout
        try:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except OSError as error:      # a closed pipe: say so in the status
            self.failure = ExportFailure(
                f"cannot write to {self.target}: {error.strerror or error}", "write")
            return ExportResult.FAILURE
        self.stats.points_exported += snapshot.point_count
        return ExportResult.SUCCESS


def text_lines(snapshot: Snapshot) -> list[str]:
    """A header line, then `name{attr=value,...} value` per series; histograms
    as count, sum and p50/p99 (the upper bound of the bucket holding them)."""
    when = datetime.fromtimestamp(snapshot.time_ns / 1e9, UTC)
    lines = [f"# snapshot {snapshot.seq} of gadget {snapshot.gadget} at "
             f"{when.isoformat(timespec='milliseconds')}: {snapshot.point_count} points"
             + (" (final)" if snapshot.final else "")]
    for data in snapshot.metrics:
        for point in data.points:
            attributes = ",".join(f"{key}={_text_value(value)}"
                                  for key, value in point.attributes)
            series = f"{data.info.name}{{{attributes}}}"
            value = point.value
            if isinstance(value, HistogramValue):
                p50 = bucket_quantile(value, data.info.bounds, 0.5)
                p99 = bucket_quantile(value, data.info.bounds, 0.99)
                lines.append(f"{series} count={value.count} sum={_number(value.sum)} "
                             f"p50={_number(p50)} p99={_number(p99)}")
            else:
                lines.append(f"{series} {_number(value)}")
    return lines


def json_lines(snapshot: Snapshot) -> list[str]:
    """One JSON object per series, complete in itself (resource included)."""
    resource = {key: value for key, value in snapshot.resource}
    lines = []
    for data in snapshot.metrics:
        info = data.info
        for point in data.points:
            record: dict[str, Any] = {
                "seq": snapshot.seq, "gadget": snapshot.gadget,
                "time_unix_nano": snapshot.time_ns,
                "start_time_unix_nano": point.start_time_ns,
                "metric": info.name, "kind": info.kind, "unit": info.unit,
                "attributes": {key: value for key, value in point.attributes},
                "resource": resource,
            }
            value = point.value
            if isinstance(value, HistogramValue):
                record["value"] = {"count": value.count, "sum": _json_number(value.sum),
                                   "bounds": [_json_number(b) for b in info.bounds],
                                   "counts": list(value.counts)}
            else:
                record["value"] = _json_number(value)
            if snapshot.final:
                record["final"] = True
            lines.append(json.dumps(record, separators=(",", ":"), allow_nan=False))
    return lines


def _text_value(value: AttrValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return json.dumps(text) if not text or _NEEDS_QUOTES.intersection(text) else text


def _number(value: int | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("+Inf" if value > 0 else
                                                          "-Inf" if value < 0 else "NaN")
    return str(value)


def _json_number(value: int | float) -> int | float | str:
    """JSON has no NaN or infinities: they are written as protobuf's JSON does."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


TYPE = ExporterType(
    "console", "Prints every export on standard output (for debugging).",
    (Field("format", Choice(("text", "json")), "text for people, json for tools.",
           "text", default="text", default_shown="text"),
     limits_field(push=False)),
    build_console, ConsoleExporter, COMMON_RULES, fixed_address="stdout")
