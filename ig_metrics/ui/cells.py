"""What a table cell or a status mark shows: rates, exact totals, bucket
bounds, attribute values, and one style per exporter health, shared by the
local table and the cluster table."""

from __future__ import annotations

import math

from ig_metrics.gadgets.spec import AttributeSpec, GadgetSpec
from ig_metrics.model.semconv import (
    CONTAINER_ID,
    CONTAINER_NAME,
    NAMESPACE,
    PEER_NAMESPACE,
    PEER_POD_NAME,
    POD_NAME,
)
from ig_metrics.model.snapshot import COUNTER, HISTOGRAM
from ig_metrics.summary.rows import Row, short_name

# An exporter's health (its value) -> (mark, style), in every table.
HEALTH_STYLE = {"healthy": ("●", "green"), "degraded": ("◐", "yellow"),
                "failing": ("✗", "red"), "recovering": ("◑", "cyan"),
                "starting": ("○", "yellow"), "stopped": ("○", "dim")}
TROUBLED = frozenset({"degraded", "failing", "recovering"})

# An expanding attribute (several names) shows as one column: the values of
# the first of these name lists whose first name a row has, joined by '/'.
_GROUP_CELLS = {"cgroup": ((NAMESPACE, POD_NAME, CONTAINER_NAME), (CONTAINER_ID,)),
                "peer_pod": ((PEER_NAMESPACE, PEER_POD_NAME),)}
SHORT_CONTAINER_ID = 12              # as `docker ps` and `crictl ps` show ids


def attribute_cell(attribute: AttributeSpec, values: dict) -> str:
    """What a row shows in the column of `attribute`."""
    if not attribute.expands:
        return str(values.get(attribute.name, ""))
    for names in _GROUP_CELLS.get(attribute.decoder, ()):
        if names[0] in values:
            shown = [str(values[name]) for name in names if name in values]
            if names == (CONTAINER_ID,):
                shown = [shown[0][:SHORT_CONTAINER_ID]]
            return "/".join(shown)
    return ""


def shown_attributes(spec: GadgetSpec, cells: list[list[str]]) -> list[int]:
    """The indexes of the attribute columns a table shows, given each row's
    cells: an expanding or opt-in attribute's column only where a row has it
    (no container column on a host without containers, no pid column unless
    the profile opted in); every other one always, so that columns stay put."""
    return [index for index, attribute in enumerate(spec.attributes)
            if not (attribute.expands or attribute.opt_in) or any(row[index] for row in cells)]


def format_rate(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "By":
        for suffix in ("B/s", "KB/s", "MB/s", "GB/s"):
            if abs(value) < 1000 or suffix == "GB/s":
                return f"{value:.0f} {suffix}" if suffix == "B/s" else f"{value:.1f} {suffix}"
            value /= 1000
    return f"{value:.1f}/s" if value < 100 else f"{value:.0f}/s"


def format_total(value: float, unit: str) -> str:
    """Exact: 111,111 B (a total is a count of bytes or events, never rounded)."""
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"
    return f"{text} B" if unit == "By" else text


def format_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    if value == 0:
        return "0"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value * 1e9:.3g}ns"


def format_bound(value: float, unit: str) -> str:
    """A percentile as what it is: the upper bound of the bucket it fell in."""
    if math.isinf(value):
        return "> last bucket"
    return "≤ " + (format_seconds(value) if unit == "s" else f"{value:g}")


def format_cell(spec: GadgetSpec, metric_name: str, cell) -> str:
    """A rate, or a histogram's `≤ p50 / ≤ p99`."""
    metric = spec.metric(metric_name)
    if metric.kind == HISTOGRAM:
        if cell is None:
            return "–"
        return f"{format_bound(cell[0], metric.unit)} / {format_bound(cell[1], metric.unit)}"
    return format_rate(cell, metric.unit)


def metric_cell(spec: GadgetSpec, metric_name: str, row: Row) -> str:
    """A counter's total since its series began and its rate; a histogram's percentiles."""
    metric = spec.metric(metric_name)
    rate = format_cell(spec, metric_name, row.cells.get(metric_name))
    if metric.kind != COUNTER:
        return rate
    return f"{format_total(row.totals.get(metric_name, 0), metric.unit)} · {rate}"


def column_title(spec: GadgetSpec, metric_name: str, window: float = 0.0) -> str:
    """Two header lines: the column's short name, then what its cells hold."""
    metric = spec.metric(metric_name)
    title = short_name(metric_name)
    if metric.kind == HISTOGRAM:
        return f"{title}\np50 / p99" + (f", last {window:.0f}s" if window else "")
    if metric.kind == COUNTER:
        return f"{title}\ntotal · per s"
    return f"{title}\nnow"
