"""The pieces every exporter type's table is built from: the `limits:` section
that all types have, and `env()` for the environment variables a setting
falls back to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ig_metrics.config.fieldkinds import DurationKind, Kind
from ig_metrics.config.fields import EnvVar, Field, Section
from ig_metrics.config.model import (
    DEFAULT_EXPORT_SHARE,
    DEFAULT_MAX_INTERVAL_FACTOR,
    DEFAULT_POINTS_PER_EXPORT,
    LimitSettings,
)
from ig_metrics.config.quantities import CountMap, IntKind, ShareKind


def env(*names: str, kind: Kind | None = None) -> tuple[EnvVar, ...]:
    return tuple(EnvVar(name, kind) for name in names)


def limits_field(push: bool) -> Field:
    per_request = (Field(
        "max_points_per_export", IntKind(1),
        "Data points per request: a larger export goes out as several requests (a "
        "default collector refuses a gRPC message over 4 MiB; 1000 points of the tcp "
        "gadget make about 1.2 MB).",
        1000, default=DEFAULT_POINTS_PER_EXPORT, default_shown=DEFAULT_POINTS_PER_EXPORT),
    ) if push else ()
    section = Section((
        Field("max_series", IntKind(2),
              "The most series one metric may export, the overflow series included: "
              "the series first seen are kept, later ones are folded into one series "
              "with the attribute otel.metric.overflow=true and counted in "
              "ig_metrics.export.points.dropped (reason overflow). Default: no limit.",
              2000),
        Field("max_series_by_metric", CountMap(2),
              "max_series for the metrics named here, overriding max_series.",
              {"tcp.sent": 10000}, default=(), default_shown={}),
        *per_request,
        Field("min_interval", DurationKind(),
              "The interval is never shorter than this, whatever the profile or "
              "`run --interval` ask (a warning says so at start).",
              "5s"),
        Field("max_interval", DurationKind(),
              "The widest that load may make the interval. Default: "
              f"{DEFAULT_MAX_INTERVAL_FACTOR} times the interval.",
              "2m"),
        Field("max_export_share", ShareKind(),
              "When one export takes more than this share of the interval, or the "
              "sampler's reading of the kernel overruns its own, the interval doubles, "
              "step by step up to max_interval; it narrows back, step by step, once "
              "exports take less than a quarter of that share. Each change is logged.",
              "50%", default=DEFAULT_EXPORT_SHARE,
              default_shown=f"{DEFAULT_EXPORT_SHARE * 100:g}%"),
    ), owner="limits")
    return Field("limits", section,
                 "Quotas of this exporter: series per metric, points per request, the "
                 "interval's floor and how far load may widen it.",
                 {"max_series": 2000, "min_interval": "5s"})


def build_limits(values: Mapping[str, Any]) -> LimitSettings:
    return LimitSettings(**values.get("limits", {}))
