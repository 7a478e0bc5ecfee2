"""The rows of a gadget's table, computed from two consecutive snapshots: one
row per series (the gadget's attributes), counters as rates per second and as
totals so far, histograms as percentiles. Pure functions, shared by the local
table (ui/live.py), the node summary (summary/node.py) and the cluster table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import COUNTER, GAUGE, HISTOGRAM, Snapshot, bucket_quantile


class UnknownSortColumn(ValueError):
    """--sort named neither a metric nor an attribute of the gadget."""


@dataclass(frozen=True, slots=True)
class Row:
    attributes: tuple[tuple[str, object], ...]
    cells: dict[str, float | tuple[float | None, float | None] | None]  # rate, or (p50, p99)
    totals: dict[str, float] = field(default_factory=dict)  # counter -> its value now


def sort_keys(spec: GadgetSpec) -> list[str]:
    return [*spec.table.columns,
            *(attribute.name for attribute in spec.attributes if not attribute.expands)]


def series_names(spec: GadgetSpec) -> tuple[frozenset[str], tuple[str, ...]]:
    """The attribute names that tell a gadget's series apart (those values add,
    like network.io.direction, do not): exact names, and prefixes."""
    names = [name for attribute in spec.attributes for name in attribute.names]
    return (frozenset(name for name in names if not name.endswith("*")),
            tuple(name[:-1] for name in names if name.endswith("*")))


def check_sort(spec: GadgetSpec, sort: str | None) -> str:
    """The column to sort by: `sort` if it is one, else the gadget's default."""
    if not sort:
        return spec.table.sort or (spec.table.columns[0] if spec.table.columns else "")
    if sort not in sort_keys(spec):
        raise UnknownSortColumn(f"--sort: '{sort}' is not a column of gadget {spec.name}; "
                                f"choose one of: {', '.join(sort_keys(spec))}")
    return sort


def sort_columns(specs: list[GadgetSpec], sort: str | None) -> list[str]:
    """Each gadget's sort column: `sort` where it is one of the gadget's
    columns, else the gadget's default; a `sort` no gadget has is refused."""
    if len(specs) == 1 or not sort:
        return [check_sort(spec, sort) for spec in specs]
    if not any(sort in sort_keys(spec) for spec in specs):
        choices = ", ".join(dict.fromkeys(key for spec in specs for key in sort_keys(spec)))
        raise UnknownSortColumn(f"--sort: '{sort}' is not a column of gadget "
                                f"{', '.join(spec.name for spec in specs)}; choose one of: "
                                f"{choices}")
    return [sort if sort in sort_keys(spec) else check_sort(spec, None) for spec in specs]


@dataclass(frozen=True, slots=True)
class GadgetTable:
    """A gadget's table at one reading: its top rows, how many series it has,
    and each counter column summed over all of them (exact: not only the top)."""

    rows: list[Row]
    series: int
    totals: dict[str, float]


def build_rows(spec: GadgetSpec, previous: Snapshot | None, current: Snapshot,
               *, top: int, sort: str, totals: dict | None = None) -> list[Row]:
    """The `top` rows by `sort`. `totals`, a dict the caller keeps from one
    call to the next, holds the sums per series of the current snapshot for
    the next call, whose previous snapshot it is (summed once, not twice)."""
    return gadget_table(spec, previous, current, top=top, sort=sort, kept=totals).rows


def gadget_table(spec: GadgetSpec, previous: Snapshot | None, current: Snapshot,
                 *, top: int, sort: str, kept: dict | None = None) -> GadgetTable:
    """The gadget's table: its `top` rows by `sort`, its series and its totals.
    `kept` is build_rows' `totals`."""
    attribute_names = [attribute.name for attribute in spec.attributes]
    elapsed = (current.time_ns - previous.time_ns) / 1e9 if previous else 0.0
    names = series_names(spec)
    kept = kept if kept is not None else {}
    known = kept.get("snapshot")
    identities = kept.setdefault("identities", {})
    if previous is None:
        before = {}
    elif known is not None and known[0] is previous:
        before = known[1]
    else:
        before = _totals(spec, previous, names, identities)
    now = _totals(spec, current, names, identities)
    kept["snapshot"] = (current, now)
    columns = _columns(spec)
    # Every row's sort column first; the other cells of the rows shown only.
    ranked = [column for column in columns if column.name == sort]
    rows = [Row(identity, _cells(ranked, identity, metrics, before, elapsed))
            for identity, metrics in now.items()]
    rows.sort(key=lambda row: sort_value(row, sort, attribute_names), reverse=True)
    counters = [column.name for column in columns if column.kind == COUNTER]
    sums = {name: sum(metrics.get(name, 0) for metrics in now.values()) for name in counters}
    return GadgetTable([Row(row.attributes,
                            _cells(columns, row.attributes, now[row.attributes], before,
                                   elapsed),
                            {name: now[row.attributes].get(name, 0) for name in counters})
                        for row in rows[:top]], len(now), sums)

@dataclass(frozen=True, slots=True)
class _Column:
    """A metric column of the table, with its bucket bounds (histograms)."""

    name: str
    kind: str
    bounds: tuple[float, ...]


def _columns(spec: GadgetSpec) -> list[_Column]:
    metrics = [spec.metric(name) for name in spec.table.columns]
    return [_Column(metric.name, metric.kind,
                    metric.bounds if metric.kind == HISTOGRAM else ()) for metric in metrics]


def _cells(columns: list[_Column], identity: tuple, metrics: dict, before: dict,
           elapsed: float) -> dict[str, float | tuple[float | None, float | None] | None]:
    cells: dict[str, float | tuple[float | None, float | None] | None] = {}
    for column in columns:
        name, value = column.name, metrics.get(column.name)
        if column.kind == HISTOGRAM:
            cells[name] = None if value is None else (
                bucket_quantile(value, column.bounds, 0.5),
                bucket_quantile(value, column.bounds, 0.99))
        elif column.kind == GAUGE:
            cells[name] = value
        elif value is None or elapsed <= 0:
            cells[name] = None
        else:
            previous_value = before.get(identity, {}).get(name, 0)
            cells[name] = max(0.0, (value - previous_value) / elapsed)
    return cells


def sort_value(row: Row, sort: str, attribute_names: list[str]) -> tuple:
    """The key rows sort by, descending: a metric's rate (a histogram's p99),
    or an attribute's value."""
    if sort in attribute_names:
        value = dict(row.attributes).get(sort)
        return (1, str(value)) if not isinstance(value, int) else (0, value)
    cell = row.cells.get(sort)
    if isinstance(cell, tuple):
        cell = cell[1]   # histograms sort by p99
    return (0, -1.0 if cell is None else float(cell))


def _totals(spec: GadgetSpec, snapshot: Snapshot,
            names: tuple[frozenset[str], tuple[str, ...]], identities: dict) -> dict:
    """identity -> metric -> value, summing points whose extra attributes (like
    network.io.direction on tcp.resets) differ. `identities` maps id(a point's
    attributes) -> (those attributes, their identity) from one call to the
    next: a series' attributes are the same object from tick to tick, and
    picking their identity out again for every point was a third of this
    call; it keeps only the attributes of this snapshot (and holds them, so
    that an id is not reused while it is in the map)."""
    out: dict[tuple, dict[str, Any]] = {}        # int, float or HistogramValue, by kind
    wanted = set(spec.table.columns)
    exact, prefixes = names
    seen: dict[int, tuple] = {}
    for data in snapshot.metrics:
        if data.info.name not in wanted:
            continue
        name, kind = data.info.name, data.info.kind
        for point in data.points:
            attributes = point.attributes
            known = identities.get(id(attributes))
            if known is None or known[0] is not attributes:
                known = (attributes, tuple(item for item in attributes
                                           if item[0] in exact or item[0].startswith(prefixes)))
            seen[id(attributes)] = known
            metrics = out.setdefault(known[1], {})
            if kind == COUNTER:
                metrics[name] = metrics.get(name, 0) + point.value
            elif kind != HISTOGRAM or name not in metrics:
                metrics[name] = point.value
    identities.clear()
    identities.update(seen)
    return out
