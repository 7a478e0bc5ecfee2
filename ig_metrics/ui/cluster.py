"""The cluster-wide live table of `run --cluster` and `top --cluster`: per
gadget, the busiest series across nodes with a `node` column (counters as
totals since the series began and rates per second, as each node computed
them) and the cluster's totals; then one line per node with its pod's state,
its totals, its exporters' health and how old its reading is, or why it shows
nothing. Also the progress line per node while the pods start, and the lines
--no-tui logs. Cells are formatted by ui/live.py's helpers."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ig_metrics.cluster.api import FAILED, GONE, PENDING, PULLING, READY, RUNNING, PodState
from ig_metrics.cluster.table import cluster_rows, cluster_totals
from ig_metrics.cluster.watch import ClusterReading, NodeReading
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import COUNTER
from ig_metrics.summary.rows import short_name
from ig_metrics.ui.cells import (
    HEALTH_STYLE,
    attribute_cell,
    column_title,
    format_total,
    metric_cell,
    shown_attributes,
)

NO_POD = ("no pod yet: the DaemonSet has none scheduled (does a node match --node or "
          "--node-selector?)")
STATE_STYLE = {PENDING: ("○", "yellow"), PULLING: ("◌", "yellow"), RUNNING: ("◐", "cyan"),
               READY: ("●", "green"), FAILED: ("✗", "red"), GONE: ("○", "dim")}
NO_POD_GRACE = 10.0          # seconds without any pod before saying so
STALE_AFTER = 2.5            # intervals: a node's reading older than this says its age
MIN_STALE = 3.0              # seconds, however short the interval


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


def node_line(specs: Sequence[GadgetSpec], node: NodeReading) -> str:
    """One line per node: state, totals and exporters, or why it shows nothing."""
    if node.summary is None:
        line = progress_line(node.pod, node.why)
        if node.read_error and not node.pod.crashed:
            line += f"; not read: {node.read_error}"
        elif node.pod.state in (READY, RUNNING):
            line += "; starting: no reading yet"
        return line
    summary = node.summary
    parts = [f"{node.node}: {node.pod.state}"]
    for spec in specs:
        gadget = summary.gadget(spec.name)
        if gadget is None:
            continue
        # With several gadgets, each one's part starts with its name.
        prefix = f"{spec.name}: " if len(specs) > 1 else ""
        parts.append(f"{prefix}{gadget.series} series")
        parts.extend(f"{name} {format_total(gadget.totals.get(name, 0), spec.metric(name).unit)}"
                     for name in spec.table.columns if spec.metric(name).kind == COUNTER)
        if gadget.failure:
            parts.append(f"{spec.name} reading fails: {gadget.failure}")
    if node.pod.restarts:
        parts.append(f"restarted {node.pod.restarts}x")
    if summary.exporters:
        parts.append("exporters " + ", ".join(f"{exporter.name} {exporter.health}"
                                              for exporter in summary.exporters))
    if _stale(node):
        parts.append(f"read {node.age:.0f}s ago" + (f" (then: {node.read_error})"
                                                     if node.read_error else
                                                     " (reading…)" if node.reading else ""))
    if node.why and node.pod.crashed:
        parts.append(f"its log: {node.why}")
    return "; ".join(parts)


def _node_text(specs: Sequence[GadgetSpec], node: NodeReading) -> Text:
    mark, style = STATE_STYLE.get(node.pod.state, ("?", "dim"))
    text = Text(f"{mark} ", style=style)
    text.append(node_line(specs, node), style=None if node.summary is not None else style)
    if node.summary is not None:
        for exporter in node.summary.exporters:
            text.highlight_words([f"{exporter.name} {exporter.health}"],
                                 HEALTH_STYLE.get(exporter.health, ("", ""))[1])
    return text


def gadget_table(spec: GadgetSpec, reading: ClusterReading, *, title: str, top: int,
                 sort: str) -> Table:
    rows = cluster_rows(spec, reading, top=top, sort=sort)
    series, totals = cluster_totals(spec, reading)
    counters = ", ".join(f"{name} {format_total(totals.get(name, 0), spec.metric(name).unit)}"
                         for name in spec.table.columns
                         if spec.metric(name).kind == COUNTER)
    caption = f"{len(rows)} of {series:,} series" + (f" · cluster: {counters}"
                                                               if counters else "")
    table = Table(title=f"{title} · {spec.name}", title_justify="left", expand=False,
                  pad_edge=False, caption=caption, caption_justify="left")
    cells = [[attribute_cell(attribute, dict(entry.row.attributes))
              for attribute in spec.attributes] for entry in rows]
    shown = shown_attributes(spec, cells)
    table.add_column("node", style="bold")
    for index in shown:
        table.add_column(short_name(spec.attributes[index].name), overflow="fold")
    for name in spec.table.columns:
        table.add_column(column_title(spec, name), justify="right",
                         style="bold cyan" if name == sort else None)
    for entry, row_cells in zip(rows, cells):
        table.add_row(entry.node, *(row_cells[index] for index in shown),
                      *(metric_cell(spec, name, entry.row) for name in spec.table.columns))
    return table


def render(specs: Sequence[GadgetSpec], reading: ClusterReading, *, title: str, top: int,
           sorts: Sequence[str], node_lines: int | None = None) -> Group:
    """A table per gadget, then a line per node: at most `node_lines` of them,
    those that need a look (not read, failing, slow to answer) first."""
    tables = [gadget_table(spec, reading, title=title, top=top, sort=sort)
              for spec, sort in zip(specs, sorts, strict=True)]
    nodes = reading.nodes
    if node_lines is not None and len(nodes) > node_lines:
        nodes = sorted(nodes, key=lambda node: not _needs_a_look(node))[:node_lines - 1]
    lines = [_node_text(specs, node) for node in nodes]
    if len(nodes) < len(reading.nodes):
        rest = [node for node in reading.nodes if node not in nodes]
        fine = all(not _needs_a_look(node) for node in rest)
        lines.append(Text(f"… and {len(rest):,} more nodes" +
                          (": read, every exporter healthy" if fine else ""), style="dim"))
    if not reading.nodes:
        lines = [Text(NO_POD, style="yellow")]
    if reading.pods_error:
        lines.append(Text(f"watching the pods: {reading.pods_error} (retrying)", style="yellow"))
    return Group(*tables, *lines)


def _stale(node: NodeReading) -> bool:
    """Whether a read node's summary is older than a few of its intervals."""
    return node.summary is not None and \
        node.age > max(STALE_AFTER * node.summary.interval, MIN_STALE)


def _needs_a_look(node: NodeReading) -> bool:
    summary = node.summary
    return (summary is None or bool(node.read_error) or node.pod.restarts > 0
            or _stale(node)
            or any(exporter.health != "healthy" for exporter in summary.exporters)
            or any(gadget.failure for gadget in summary.gadgets))


def summary_lines(specs: Sequence[GadgetSpec], reading: ClusterReading) -> list[str]:
    """What --no-tui logs per interval: one line per node."""
    return [node_line(specs, node) for node in reading.nodes] or [NO_POD]


class ClusterLiveView:
    """Redraws the cluster table from each reading."""

    def __init__(self, specs: Sequence[GadgetSpec], *, title: str, top: int,
                 sorts: Sequence[str], console: Console | None = None) -> None:
        self.specs, self.title, self.top, self.sorts = list(specs), title, top, list(sorts)
        self._live = Live(console=console or Console(), auto_refresh=False, transient=False,
                          redirect_stdout=True, redirect_stderr=True)

    def __enter__(self) -> ClusterLiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)

    def update(self, reading: ClusterReading) -> None:
        self._live.update(frame(self.specs, reading, title=self.title, top=self.top,
                                sorts=self.sorts, height=self._live.console.size.height),
                          refresh=True)


def frame(specs: Sequence[GadgetSpec], reading: ClusterReading, *, title: str, top: int,
          sorts: Sequence[str], height: int) -> Group:
    """What a terminal `height` lines high shows: the node lines get what the
    tables leave of it (it shows no more, and drawing 1,000 of them cost a tenth
    of a second)."""
    room = height - len(specs) * (top + 6)
    return render(specs, reading, title=title, top=top, sorts=sorts, node_lines=max(5, room))


class LogDisplay:
    """--no-tui: a node's line when its state changes while it is not read,
    and every read node's line once per the nodes' interval (their numbers
    change no faster)."""

    def __init__(self, specs: Sequence[GadgetSpec], log: logging.Logger) -> None:
        self.specs, self.log = list(specs), log
        self._started = time.monotonic()
        self._shown: dict[str, str] = {}
        self._first_table = False
        self._next_summary = 0.0

    def update(self, reading: ClusterReading) -> None:
        now = time.monotonic()
        for node in reading.nodes:
            if node.summary is None:
                self._once(node.pod.name, node_line(self.specs, node))
        if not reading.nodes and now - self._started > NO_POD_GRACE:
            self._once("", NO_POD)
        self._once("pods", f"watching the pods: {reading.pods_error} (retrying)"
                   if reading.pods_error else "")
        read = reading.ready()
        if read and not self._first_table:
            self._first_table = True
            self.log.info("first cluster table after %.1fs (from the first look at the "
                          "pods): %d of %d nodes read", now - self._started, len(read),
                          len(reading.nodes))
        if read and now >= self._next_summary:
            self._next_summary = now + max(1.0, reading.export_interval()) - 0.05
            for node in read:
                self._shown.pop(node.pod.name, None)
                self.log.info("%s", node_line(self.specs, node))

    def _once(self, key: str, line: str) -> None:
        if line and self._shown.get(key) != line:
            self.log.info("%s", line)
        self._shown[key] = line
