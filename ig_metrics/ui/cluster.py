"""The cluster-wide live table of `run --cluster` and `top --cluster`: the
busiest series across nodes with a `node` column (counters as totals since the
node started and rates per second), and one line per node with its pod's
state, its totals and its exporters' health, or why it is not running. Also
the progress line per node while the pods start, and the summary lines
--no-tui logs. Cells are formatted by ui/live.py's helpers."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.k8s.cluster import FAILED, GONE, PENDING, PULLING, READY, RUNNING, PodState
from ig_metrics.k8s.clusterwatch import ClusterReading, NodeReading
from ig_metrics.model.snapshot import COUNTER, HISTOGRAM, Snapshot
from ig_metrics.ui.live import attribute_cell, column_title, format_cell, short_name
from ig_metrics.ui.rows import Row, build_rows, series_names

NO_POD = ("no pod yet: the DaemonSet has none scheduled (does a node match --node or "
          "--node-selector?)")
STATE_STYLE = {PENDING: ("○", "yellow"), PULLING: ("◌", "yellow"), RUNNING: ("◐", "cyan"),
               READY: ("●", "green"), FAILED: ("✗", "red"), GONE: ("○", "dim")}
HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "failing": "red",
                "recovering": "cyan", "starting": "yellow"}


@dataclass(frozen=True, slots=True)
class ClusterRow:
    node: str
    row: Row                                  # rates and percentiles, as the local table
    totals: dict[str, float]                  # counter column -> total since the node started


def format_total(value: float, unit: str) -> str:
    """Exact: 111,111 B (a total is a count of bytes or events, never rounded)."""
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"
    return f"{text} B" if unit == "By" else text


def series_totals(spec: GadgetSpec, snapshot: Snapshot) -> dict[tuple, dict[str, float]]:
    """identity (as build_rows makes it) -> counter column -> its value now."""
    exact, prefixes = series_names(spec)
    counters = {name for name in spec.table.columns if spec.metric(name).kind == COUNTER}
    totals: dict[tuple, dict[str, float]] = {}
    for data in snapshot.metrics:
        if data.info.name not in counters:
            continue
        for point in data.points:
            identity = tuple(item for item in point.attributes
                             if item[0] in exact or item[0].startswith(prefixes))
            cells = totals.setdefault(identity, {})
            cells[data.info.name] = cells.get(data.info.name, 0) + point.value
    return totals


def node_totals(spec: GadgetSpec, snapshot: Snapshot) -> dict[str, float]:
    sums: dict[str, float] = {}
    for cells in series_totals(spec, snapshot).values():
        for name, value in cells.items():
            sums[name] = sums.get(name, 0) + value
    return sums


def cluster_rows(spec: GadgetSpec, reading: ClusterReading, *, top: int,
                 sort: str) -> list[ClusterRow]:
    """The `top` busiest series of every ready node together."""
    rows: list[ClusterRow] = []
    for node in reading.ready():
        current = node.metrics.snapshot
        previous = node.previous.snapshot if node.previous else None
        totals = series_totals(spec, current)
        rows.extend(ClusterRow(node.node, row, totals.get(row.attributes, {}))
                    for row in build_rows(spec, previous, current, top=top, sort=sort))
    rows.sort(key=lambda entry: _rank(entry, sort), reverse=True)
    return rows[:top]


def _rank(entry: ClusterRow, sort: str):
    cell = entry.row.cells.get(sort)
    if isinstance(cell, tuple):
        cell = cell[1]
    if sort not in entry.row.cells:
        value = dict(entry.row.attributes).get(sort)
        return (0, str(value), 0.0)
    return (1, float(cell or 0.0), float(entry.totals.get(sort, 0)))


def progress_line(pod: PodState, why: str = "") -> str:
    """`node-a: pulling (ContainerCreating)`, as the run waits for its pods."""
    text = f"{pod.node or pod.name}: {pod.state}"
    if pod.reason:
        text += f" ({pod.reason})"
    if pod.restarts:
        text += f", restarted {pod.restarts}x" + (f", last {pod.last_exit}" if pod.last_exit
                                                  else "")
    if why:
        text += f"; its log: {why}"
    return text


def node_line(spec: GadgetSpec, node: NodeReading) -> str:
    """One line per node: state, totals and exporters, or why it shows nothing."""
    if node.metrics is None:
        line = progress_line(node.pod, node.why)
        if node.read_error and not node.pod.crashed:
            line += f"; not read: {node.read_error}"
        return line
    snapshot = node.metrics.snapshot
    sums = node_totals(spec, snapshot)
    parts = [f"{node.node}: {node.pod.state}",
             f"{len(series_totals(spec, snapshot))} series"]
    parts.extend(f"{name} {format_total(sums.get(name, 0), spec.metric(name).unit)}"
                 for name in spec.table.columns if spec.metric(name).kind == COUNTER)
    if node.pod.restarts:
        parts.append(f"restarted {node.pod.restarts}x")
    if node.metrics.exporters:
        parts.append("exporters " + ", ".join(f"{exporter.name} {exporter.health}"
                                              for exporter in node.metrics.exporters))
    if node.why and node.pod.crashed:
        parts.append(f"its log: {node.why}")
    return "; ".join(parts)


def _node_text(spec: GadgetSpec, node: NodeReading) -> Text:
    mark, style = STATE_STYLE.get(node.pod.state, ("?", "dim"))
    text = Text(f"{mark} ", style=style)
    line = node_line(spec, node)
    text.append(line, style=None if node.metrics is not None else style)
    if node.metrics is not None:
        for exporter in node.metrics.exporters:
            text.highlight_words([f"{exporter.name} {exporter.health}"],
                                 HEALTH_STYLE.get(exporter.health, ""))
    return text


def render(spec: GadgetSpec, reading: ClusterReading, *, title: str, top: int,
           sort: str) -> Group:
    rows = cluster_rows(spec, reading, top=top, sort=sort)
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    cells = [[attribute_cell(attribute, dict(entry.row.attributes))
              for attribute in spec.attributes] for entry in rows]
    shown = [index for index, attribute in enumerate(spec.attributes)
             if not attribute.expands or any(row[index] for row in cells)]
    table.add_column("node", style="bold")
    for index in shown:
        table.add_column(short_name(spec.attributes[index].name), overflow="fold")
    for name in spec.table.columns:
        title_text = column_title(spec, name)
        if spec.metric(name).kind == COUNTER:
            title_text = title_text.replace("\nper s", "\ntotal · per s")
        table.add_column(title_text, justify="right",
                         style="bold cyan" if name == sort else None)
    for entry, row_cells in zip(rows, cells):
        table.add_row(entry.node, *(row_cells[index] for index in shown),
                      *(_metric_cell(spec, name, entry) for name in spec.table.columns))
    lines = [_node_text(spec, node) for node in reading.nodes]
    if not reading.nodes:
        lines = [Text(NO_POD, style="yellow")]
    return Group(table, *lines)


def _metric_cell(spec: GadgetSpec, name: str, entry: ClusterRow) -> str:
    metric = spec.metric(name)
    rate = format_cell(spec, name, entry.row.cells.get(name))
    if metric.kind == HISTOGRAM:
        return rate
    return f"{format_total(entry.totals.get(name, 0), metric.unit)} · {rate}"


def summary_lines(spec: GadgetSpec, reading: ClusterReading) -> list[str]:
    """What --no-tui logs per interval: one line per node."""
    return [node_line(spec, node) for node in reading.nodes] or [NO_POD]


class ClusterLiveView:
    """Redraws the cluster table from each reading."""

    def __init__(self, spec: GadgetSpec, *, title: str, top: int, sort: str,
                 console: Console | None = None) -> None:
        self.spec, self.title, self.top, self.sort = spec, title, top, sort
        self._live = Live(console=console or Console(), auto_refresh=False, transient=False,
                          redirect_stdout=True, redirect_stderr=True)

    def __enter__(self) -> ClusterLiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)

    def show_progress(self, lines: list[str]) -> None:
        self._live.update(Group(Text(f"{self.title}: waiting for the pods…"),
                                *(Text(line) for line in lines)), refresh=True)

    def update(self, reading: ClusterReading) -> None:
        self._live.update(render(self.spec, reading, title=self.title, top=self.top,
                                 sort=self.sort), refresh=True)
