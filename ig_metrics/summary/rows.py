"""The rows of a gadget's table, computed from two consecutive snapshots and
one from a little while ago (the recent window): one row per series (the
gadget's attributes), counters as rates per second and as totals so far,
histograms as percentiles over the recent window. A series that changed in
the window is live; one that did not is idle, and sinks below the live ones.
Pure functions, shared by the local table (ui/live.py), the node summary
(summary/node.py) and the cluster table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HistogramValue,
    Snapshot,
    bucket_quantile,
)

DEFAULT_TOP = 20              # rows a table shows, and a node summary sends, unless asked


class UnknownSortColumn(ValueError):
    """--sort named neither a metric nor an attribute of the gadget."""


# A cell: a rate (or a gauge's value), a histogram's (p50, p99), None for nothing.
Cell = float | tuple[float | None, float | None] | None
RECENT_WINDOW = 10.0          # seconds of the recent percentiles, and of idleness

# Short names of attributes as the tables' headers show them (--sort takes them too).
SHORT_NAMES = {"process.pid": "pid", "process.command": "command", "server.port": "port",
               "network.peer.address": "peer", "network.type": "net",
               "tcp.connection.direction": "dir", "process.parent.command": "parent",
               "syscall.name": "syscall", "error.type": "error", "file.path": "path",
               "peer.pod": "peer pod"}


@dataclass(frozen=True, slots=True)
class Row:
    attributes: tuple[tuple[str, object], ...]
    cells: dict[str, Cell]                                   # metric -> rate, or (p50, p99)
    totals: dict[str, float] = field(default_factory=dict)  # counter -> its value now
    idle: bool = False                                       # nothing changed in the window


def short_name(name: str) -> str:
    """What a table's header calls a column: `pid` for process.pid, `sent` for
    tcp.sent."""
    return SHORT_NAMES.get(name, name.rsplit(".", 1)[-1] if "." in name else name)


class RecentWindow:
    """The base of the recent window: a reading `seconds` old, or up to twice
    that (two readings are held, not one per tick). Until the run is `seconds`
    old, its first reading."""

    def __init__(self, seconds: float = RECENT_WINDOW) -> None:
        self.seconds = seconds
        self._base: Snapshot | None = None
        self._next: Snapshot | None = None

    def base(self, current: Snapshot) -> Snapshot:
        if self._base is None or current.time_ns < self._base.time_ns:
            self._base, self._next = current, None
        if self._next is None and _age(self._base, current) >= self.seconds:
            self._next = current
        elif self._next is not None and _age(self._next, current) >= self.seconds:
            self._base, self._next = self._next, current
        return self._base


def _age(older: Snapshot, newer: Snapshot) -> float:
    return (newer.time_ns - older.time_ns) / 1e9


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
    """The column to sort by: `sort` (a column's name, or its short name as the
    header shows it) if it is one, else the gadget's default."""
    if not sort:
        return spec.table.sort or (spec.table.columns[0] if spec.table.columns else "")
    found = _column_named(spec, sort)
    if found is None:
        raise UnknownSortColumn(f"--sort: '{sort}' is not a column of gadget {spec.name}; "
                                f"choose one of: {', '.join(sort_keys(spec))} (or their "
                                "short names in the table's header)")
    return found


def _column_named(spec: GadgetSpec, name: str) -> str | None:
    keys = sort_keys(spec)
    if name in keys:
        return name
    matches = [key for key in keys if short_name(key) == name]
    return matches[0] if len(matches) == 1 else None


def sort_columns(specs: list[GadgetSpec], sort: str | None) -> list[str]:
    """Each gadget's sort column: `sort` where it is one of the gadget's
    columns, else the gadget's default; a `sort` no gadget has is refused."""
    if len(specs) == 1 or not sort:
        return [check_sort(spec, sort) for spec in specs]
    if not any(_column_named(spec, sort) is not None for spec in specs):
        choices = ", ".join(dict.fromkeys(key for spec in specs for key in sort_keys(spec)))
        raise UnknownSortColumn(f"--sort: '{sort}' is not a column of gadget "
                                f"{', '.join(spec.name for spec in specs)}; choose one of: "
                                f"{choices}")
    return [check_sort(spec, sort if _column_named(spec, sort) else None) for spec in specs]


@dataclass(frozen=True, slots=True)
class GadgetTable:
    """A gadget's table at one reading: its top rows, how many series it has
    (and how many of them match the filter, and are idle), each counter column
    summed over all of them (exact: not only the top), and the length of the
    recent window its percentiles and idleness are over."""

    rows: list[Row]
    series: int
    totals: dict[str, float]
    matching: int = 0
    idle: int = 0
    window: float = 0.0


def build_rows(spec: GadgetSpec, previous: Snapshot | None, current: Snapshot,
               *, top: int, sort: str, totals: dict | None = None) -> list[Row]:
    """The `top` rows by `sort`. `totals`, a dict the caller keeps from one
    call to the next, holds the sums per series of the current snapshot for
    the next call, whose previous snapshot it is (summed once, not twice)."""
    return gadget_table(spec, previous, current, top=top, sort=sort, kept=totals).rows


def gadget_table(spec: GadgetSpec, previous: Snapshot | None, current: Snapshot,
                 *, top: int, sort: str, kept: dict | None = None,
                 window: Snapshot | None = None, show_idle: bool = True,
                 matching: str = "") -> GadgetTable:
    """The gadget's table: its `top` rows by `sort`, live rows first (idle ones
    left out unless `show_idle`), those with an attribute value holding
    `matching` (any case) only; its series and its totals. Rates are between
    `previous` and `current`; percentiles and idleness over `window` (the base
    of the recent window; `previous` when None). `kept` is build_rows' `totals`."""
    attribute_names = [attribute.name for attribute in spec.attributes]
    elapsed = (current.time_ns - previous.time_ns) / 1e9 if previous else 0.0
    names = series_names(spec)
    kept = kept if kept is not None else {}
    identities = kept.setdefault("identities", {})
    base_snapshot = window or previous
    base = _kept_totals(kept, "window", spec, base_snapshot, names, identities)
    before = base if previous is base_snapshot else \
        _kept_totals(kept, "snapshot", spec, previous, names, identities)
    now = _totals(spec, current, names, identities)
    kept["snapshot"] = (current, now)
    columns = _columns(spec)
    # Every row's sort column first; the other cells of the rows shown only.
    ranked = [column for column in columns if column.name == sort]
    counting = any(column.kind == COUNTER for column in ranked)
    needle = matching.casefold()
    rows = [Row(identity, _cells(ranked, identity, metrics, before, base, elapsed),
                {sort: metrics[sort]} if sort in metrics and counting else {},
                idle=base.get(identity) == metrics)
            for identity, metrics in now.items()
            if not needle or any(needle in str(value).casefold() for _, value in identity)]
    idle = sum(row.idle for row in rows)
    candidates = rows if show_idle else [row for row in rows if not row.idle]
    candidates.sort(key=lambda row: (not row.idle, sort_value(row, sort, attribute_names)),
                    reverse=True)
    counters = [column.name for column in columns if column.kind == COUNTER]
    sums = {name: sum(metrics.get(name, 0) for metrics in now.values()) for name in counters}
    return GadgetTable([Row(row.attributes,
                            _cells(columns, row.attributes, now[row.attributes], before, base,
                                   elapsed),
                            {name: now[row.attributes].get(name, 0) for name in counters},
                            row.idle)
                        for row in candidates[:top]], len(now), sums, len(rows), idle,
                       _age(base_snapshot, current) if base_snapshot else 0.0)


def _kept_totals(kept: dict, key: str, spec: GadgetSpec, snapshot: Snapshot | None,
                 names: tuple[frozenset[str], tuple[str, ...]], identities: dict) -> dict:
    """_totals of `snapshot`, kept under `key` for the calls while it stays the same."""
    if snapshot is None:
        return {}
    known = kept.get(key)
    if known is not None and known[0] is snapshot:
        return known[1]
    # The current snapshot's of the call before, when this is it.
    latest = kept.get("snapshot")
    totals = latest[1] if latest is not None and latest[0] is snapshot else \
        _totals(spec, snapshot, names, identities)
    kept[key] = (snapshot, totals)
    return totals


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


def _cells(columns: list[_Column], identity: tuple, metrics: dict, before: dict, base: dict,
           elapsed: float) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for column in columns:
        name, value = column.name, metrics.get(column.name)
        if column.kind == HISTOGRAM:
            recent = None if value is None else since(value, base.get(identity, {}).get(name))
            cells[name] = None if recent is None or recent.count == 0 else (
                bucket_quantile(recent, column.bounds, 0.5),
                bucket_quantile(recent, column.bounds, 0.99))
        elif column.kind == GAUGE:
            cells[name] = value
        elif value is None or elapsed <= 0:
            cells[name] = None
        else:
            previous_value = before.get(identity, {}).get(name, 0)
            cells[name] = max(0.0, (value - previous_value) / elapsed)
    return cells


def since(value: HistogramValue, earlier: object) -> HistogramValue:
    """What a cumulative histogram counted after `earlier` (a reading of the same
    series, or None: all of it)."""
    if not isinstance(earlier, HistogramValue) or len(earlier.counts) != len(value.counts) \
            or earlier.count > value.count:
        return value
    return HistogramValue(tuple(now - then for now, then in zip(value.counts, earlier.counts)),
                          value.sum - earlier.sum, value.count - earlier.count)


def sort_value(row: Row, sort: str, attribute_names: list[str]) -> tuple:
    """The key rows sort by, descending: a metric's rate (a histogram's p99),
    then a counter's total (rows of equal rates, 0 after a burst, rank by how
    much they moved); or an attribute's value."""
    if sort in attribute_names:
        value = dict(row.attributes).get(sort)
        return (1, str(value)) if not isinstance(value, int) else (0, value)
    cell = row.cells.get(sort)
    if isinstance(cell, tuple):
        cell = cell[1]   # histograms sort by p99
    return (0, -1.0 if cell is None else float(cell), row.totals.get(sort, 0))


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
