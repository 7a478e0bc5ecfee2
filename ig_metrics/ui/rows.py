"""The rows of the live table, computed from two consecutive snapshots: one row
per series (the gadget's attributes), counters as rates per second and
histograms as percentiles. Pure functions: rendering lives in ui/live.py."""

from __future__ import annotations

from dataclasses import dataclass

from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.pipeline.snapshot import COUNTER, GAUGE, HISTOGRAM, Snapshot, bucket_quantile


class UnknownSortColumn(ValueError):
    """--sort named neither a metric nor an attribute of the gadget."""


@dataclass(frozen=True, slots=True)
class Row:
    attributes: tuple[tuple[str, object], ...]
    cells: dict[str, float | tuple[float, float] | None]   # metric -> rate, or (p50, p99)


def sort_keys(spec: GadgetSpec) -> list[str]:
    return [*spec.table.columns, *(attribute.name for attribute in spec.attributes)]


def check_sort(spec: GadgetSpec, sort: str | None) -> str:
    """The column to sort by: `sort` if it is one, else the gadget's default."""
    if not sort:
        return spec.table.sort or (spec.table.columns[0] if spec.table.columns else "")
    if sort not in sort_keys(spec):
        raise UnknownSortColumn(f"--sort: '{sort}' is not a column of gadget {spec.name}; "
                                f"choose one of: {', '.join(sort_keys(spec))}")
    return sort


def build_rows(spec: GadgetSpec, previous: Snapshot | None, current: Snapshot,
               *, top: int, sort: str) -> list[Row]:
    attribute_names = [attribute.name for attribute in spec.attributes]
    elapsed = (current.time_ns - previous.time_ns) / 1e9 if previous else 0.0
    before = _totals(spec, previous, attribute_names) if previous else {}
    now = _totals(spec, current, attribute_names)
    rows = []
    for identity, metrics in now.items():
        cells: dict[str, float | tuple[float, float] | None] = {}
        for name in spec.table.columns:
            metric = spec.metric(name)
            value = metrics.get(name)
            if metric.kind == HISTOGRAM:
                cells[name] = None if value is None else (
                    bucket_quantile(value, metric.bounds, 0.5),
                    bucket_quantile(value, metric.bounds, 0.99))
            elif metric.kind == GAUGE:
                cells[name] = value
            elif value is None or elapsed <= 0:
                cells[name] = None
            else:
                previous_value = before.get(identity, {}).get(name, 0)
                cells[name] = max(0.0, (value - previous_value) / elapsed)
        rows.append(Row(identity, cells))
    rows.sort(key=lambda row: _sort_value(row, sort, attribute_names), reverse=True)
    return rows[:top]


def _sort_value(row: Row, sort: str, attribute_names: list[str]):
    if sort in attribute_names:
        value = dict(row.attributes).get(sort)
        return (1, str(value)) if not isinstance(value, int) else (0, value)
    cell = row.cells.get(sort)
    if isinstance(cell, tuple):
        cell = cell[1]   # histograms sort by p99
    return (0, -1.0 if cell is None else float(cell))


def _totals(spec: GadgetSpec, snapshot: Snapshot, attribute_names: list[str]) -> dict:
    """identity -> metric -> value, summing points whose extra attributes (like
    network.io.direction on tcp.resets) differ."""
    out: dict[tuple, dict[str, object]] = {}
    wanted = set(spec.table.columns)
    for data in snapshot.metrics:
        if data.info.name not in wanted:
            continue
        for point in data.points:
            identity = tuple(item for item in point.attributes if item[0] in attribute_names)
            metrics = out.setdefault(identity, {})
            if data.info.kind == COUNTER:
                metrics[data.info.name] = metrics.get(data.info.name, 0) + point.value
            elif data.info.kind == HISTOGRAM and data.info.name not in metrics:
                metrics[data.info.name] = point.value
            else:
                metrics[data.info.name] = point.value
    return out
