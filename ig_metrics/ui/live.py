"""The live terminal view of a run: the top series of each gadget (one section
per gadget) and one line per exporter, redrawn by Rich; and the one-line
summary per gadget logged instead when there is no terminal (--no-tui)."""

from __future__ import annotations

import math

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group
from rich.live import Live
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from ig_metrics.exporters.base import ExporterStatus, Health
from ig_metrics.gadgets.spec import AttributeSpec, GadgetSpec
from ig_metrics.model.semconv import CONTAINER_ID
from ig_metrics.model.semconv import (
    CONTAINER_NAME, NAMESPACE, PEER_NAMESPACE, PEER_POD_NAME, POD_NAME
)
from ig_metrics.model.snapshot import HISTOGRAM, Snapshot
from ig_metrics.summary.rows import Row, build_rows

# Health -> (label, style, mark)
_HEALTH_STYLE = {Health.HEALTHY: ("healthy", "green", "●"),
                 Health.DEGRADED: ("degraded", "yellow", "◐"),
                 Health.FAILING: ("failing", "red", "✗"),
                 Health.RECOVERING: ("recovering", "cyan", "◑"),
                 Health.STARTING: ("starting", "yellow", "○"),
                 Health.STOPPED: ("stopped", "dim", "○")}
_TROUBLED = (Health.DEGRADED, Health.FAILING, Health.RECOVERING)
_SHORT = {"process.pid": "pid", "process.command": "command", "server.port": "port",
          "network.peer.address": "peer", "network.type": "net",
          "tcp.connection.direction": "dir", "process.parent.command": "parent",
          "syscall.name": "syscall", "error.type": "error", "file.path": "path",
          "peer.pod": "peer pod"}


# An expanding attribute (several names) shows as one column: the values of
# the first of these name lists whose first name a row has, joined by '/'.
_GROUP_CELLS = {"cgroup": ((NAMESPACE, POD_NAME, CONTAINER_NAME), (CONTAINER_ID,)),
                "peer_pod": ((PEER_NAMESPACE, PEER_POD_NAME),)}
SHORT_CONTAINER_ID = 12              # as `docker ps` and `crictl ps` show ids


def short_name(attribute: str) -> str:
    return _SHORT.get(attribute, attribute.rsplit(".", 1)[-1])


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


def format_cell(spec: GadgetSpec, metric_name: str, cell) -> str:
    metric = spec.metric(metric_name)
    if metric.kind == HISTOGRAM:
        if cell is None:
            return "–"
        fmt = format_seconds if metric.unit == "s" else (lambda v: f"{v:g}")
        return f"{fmt(cell[0])} / {fmt(cell[1])}"
    return format_rate(cell, metric.unit)


def column_title(spec: GadgetSpec, metric_name: str) -> str:
    metric = spec.metric(metric_name)
    title = metric_name.split(".", 1)[-1] if "." in metric_name else metric_name
    return f"{title}\np50 / p99" if metric.kind == HISTOGRAM else f"{title}\nper s"


def export_quality(status: ExporterStatus, now_ns: int) -> list[str]:
    """What the export is doing, in short phrases: interval (and whether load
    widened it), last export, points, queue, drops, next retry."""
    every = f"every {status.interval:g}s"
    if status.configured_interval and status.interval > status.configured_interval:
        every += f" (widened from {status.configured_interval:g}s by load)"
    parts = [every]
    if status.last_success_ns:
        parts.append(f"last export {max(0, now_ns - status.last_success_ns) / 1e9:.0f}s ago"
                     f" in {format_seconds(status.last_duration)}")
    if status.points_exported:
        parts.append(f"{status.points_exported:,} points since start")
    if status.queued_batches:
        parts.append(f"{status.queued_batches} queued")
    if status.points_dropped:
        parts.append(f"{status.points_dropped} dropped")
    if status.retry_in:
        parts.append(f"retry in {status.retry_in:.0f}s")
    return parts


def exporter_line(status: ExporterStatus, now_ns: int) -> Text:
    label, style, mark = _HEALTH_STYLE[status.health]
    text = Text()
    text.append(f"{mark} ", style=style)
    text.append(f"{status.name}", style="bold")
    text.append(f" ({status.type} {status.target}) ")
    text.append(label, style=style)
    text.append(", " + ", ".join(export_quality(status, now_ns)))
    if status.health in _TROUBLED and status.last_error:
        text.append(f": {status.last_error}", style=style)
    return text


def _total(snapshot: Snapshot, metric: str) -> float | None:
    data = snapshot.metric(metric)
    if data is None or not data.points:
        return None
    return sum(point.value for point in data.points
               if isinstance(point.value, int | float))


def sampler_line(snapshot: Snapshot) -> Text | None:
    """The sampler's and the kernel side's own figures, from the self-metrics
    every snapshot carries: reading time, kernel drops, BPF runs and cost."""
    tick = _total(snapshot, "ig_metrics.sampler.tick.duration")
    if tick is None:
        return None
    parts = [f"sampler: read in {format_seconds(tick)}"]
    dropped = _total(snapshot, "ig_metrics.kernel.dropped_events") or 0
    missed = _total(snapshot, "ig_metrics.kernel.missed_events") or 0
    parts.append(f"kernel drops {dropped:.0f}, missed {missed:.0f}")
    runs = _total(snapshot, "ig_metrics.bpf.runs")
    run_time = _total(snapshot, "ig_metrics.bpf.run_time")
    if runs:
        parts.append(f"BPF {runs:.0f} runs, {format_seconds((run_time or 0) / runs)}/run")
    return Text("; ".join(parts), style="red" if dropped else "dim")


WIDEST_CELL = 48          # an attribute value longer than this is cut, with an ellipsis
_GAP = "  "
_GAP_SEGMENT = Segment(_GAP)
_BOLD, _DIM = Style.parse("bold"), Style.parse("dim")


def render_sections(sections: list[list[list[Segment]]], snapshot: Snapshot,
                    statuses: list[ExporterStatus]) -> Group:
    """The gadgets' tables one under the other, then a line per exporter and
    the samplers' line."""
    lines: list[list[Segment]] = []
    for section in sections:
        if lines:
            lines.append([])         # a blank line between two gadgets' tables
        lines.extend(section)
    footer = [exporter_line(status, snapshot.time_ns) for status in statuses]
    sampler = sampler_line(snapshot)
    return Group(_Lines(lines), *footer, *([sampler] if sampler else []))


def table_lines(spec: GadgetSpec, rows: list[Row], *, title: str,
                sort: str) -> list[list[Segment]]:
    """The table as lines of text whose columns are laid out here, once per
    snapshot: a Rich Table measures and wraps every cell at every draw, which
    cost about 20 ms of CPU a draw for 20 rows, most of what the live view
    cost (docs/performance.md)."""
    cells = [[attribute_cell(attribute, dict(row.attributes)) for attribute in spec.attributes]
             for row in rows]
    shown = shown_attributes(spec, cells)
    columns = [_Column([short_name(spec.attributes[index].name)],
                       [_cut(row_cells[index]) for row_cells in cells], right=False,
                       style="bold" if spec.attributes[index].name == sort else "")
               for index in shown]
    columns += [_Column(column_title(spec, name).split("\n"),
                        [format_cell(spec, name, row.cells.get(name)) for row in rows],
                        right=True, style="bold cyan" if name == sort else "")
                for name in spec.table.columns]
    lines = [[Segment(title)]]
    for line in range(max(len(column.title) for column in columns) if columns else 0):
        lines.append(_line(columns, [column.title[line] if line < len(column.title) else ""
                                     for column in columns], _BOLD))
    lines.append([Segment(_GAP.join("─" * column.width for column in columns), _DIM)])
    for index in range(len(rows)):
        lines.append(_line(columns, [column.cells[index] for column in columns], None))
    return lines


class _Column:
    def __init__(self, title: list[str], cells: list[str], *, right: bool, style: str) -> None:
        self.title, self.cells, self.right = title, cells, right
        self.style = Style.parse(style) if style else None
        self.width = max(len(text) for text in (*title, *cells))


def _cut(value: str) -> str:
    return value if len(value) <= WIDEST_CELL else value[:WIDEST_CELL - 1] + "…"


def _line(columns: list[_Column], values: list[str], header_style: Style | None) -> list[Segment]:
    """One line of the table: each value padded to its column, in its style."""
    line = []
    for position, (column, value) in enumerate(zip(columns, values)):
        if position:
            line.append(_GAP_SEGMENT)
        padded = value.rjust(column.width) if column.right else value.ljust(column.width)
        line.append(Segment(padded, header_style or column.style))
    return line


class _Lines:
    """Lines of styled segments, drawn as they are, each cut with an ellipsis
    at the terminal's width: the table's layout is done by render(), and
    going through a Text had Rich divide, wrap and restyle it again at every
    draw (about half of what a redraw cost)."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        width = options.max_width
        newline = Segment.line()
        for line in self.lines:
            if cell_len("".join(segment.text for segment in line)) > width:
                line = Segment.adjust_line_length(line, width - 1)
                line.append(Segment("…", line[-1].style if line else None))
            yield from line
            yield newline


# With several gadgets each section shows this many rows at least.
MIN_SECTION_ROWS = 5


class LiveView:
    """Redraws the tables from the latest snapshot, one section per gadget;
    call `update` at ~2 Hz. `top` rows in all, shared by the sections."""

    def __init__(self, specs: GadgetSpec | list[GadgetSpec], *, top: int,
                 sort: str | None = None, sorts: list[str] | None = None, title: str,
                 console: Console | None = None) -> None:
        self.specs = [specs] if isinstance(specs, GadgetSpec) else list(specs)
        self.sorts = sorts or [sort or spec.table.sort for spec in self.specs]
        self.top = top if len(self.specs) == 1 else max(MIN_SECTION_ROWS,
                                                        top // len(self.specs))
        self.title = title
        self.console = console or Console()
        self._live = Live(console=self.console, auto_refresh=False, transient=False,
                          redirect_stdout=True, redirect_stderr=True)
        self._previous: Snapshot | None = None
        self._current: Snapshot | None = None
        self._rows: list[list[Row]] = [[] for _ in self.specs]
        # build_rows' per-snapshot sums, kept for the next, per gadget
        self._totals: list[dict] = [{} for _ in self.specs]
        self._shown: tuple | None = None        # what the screen shows now

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)

    def update(self, snapshot: Snapshot | None, statuses: list[ExporterStatus]) -> None:
        """Redraw with a new snapshot, or when an exporter's state changed
        between two: drawing the table is what the live view costs (~15 ms of
        CPU each time), and the workers' progress after each reading (last
        export, points) can wait for the next one."""
        if snapshot is None:
            if self._shown != ():
                self._shown = ()
                self._live.update(Text(f"{self.title}: waiting for the first reading…"),
                                  refresh=True)
            return
        if self._current is None or snapshot.seq != self._current.seq:
            self._previous, self._current = self._current, snapshot
            self._rows = [build_rows(spec, self._previous, self._current, top=self.top,
                                     sort=sort, totals=totals)
                          for spec, sort, totals in zip(self.specs, self.sorts, self._totals)]
        shown = (self._current.seq, *(_news(status) for status in statuses))
        if shown == self._shown:
            return
        self._shown = shown
        several = len(self.specs) > 1
        sections = [table_lines(spec, rows, sort=sort,
                                title=f"{self.title} · {spec.name}" if several else self.title)
                    for spec, rows, sort in zip(self.specs, self._rows, self.sorts)]
        self._live.update(render_sections(sections, self._current, statuses), refresh=True)


def _news(status: ExporterStatus) -> tuple:
    """What of an exporter's line is worth a redraw before the next snapshot."""
    return (status.name, status.health, status.last_error, status.interval,
            status.queued_batches, status.points_dropped, round(status.retry_in))


def summary_line(spec: GadgetSpec, previous: Snapshot | None, current: Snapshot,
                 statuses: list[ExporterStatus]) -> str:
    """One line per interval for logs: totals per column and exporter states."""
    rows = build_rows(spec, previous, current, top=1 << 30, sort=spec.table.sort)
    parts = [f"{spec.name}: {len(rows)} series"]
    for name in spec.table.columns:
        metric = spec.metric(name)
        if metric.kind == HISTOGRAM:
            continue
        total = sum(row.cells.get(name) or 0 for row in rows)
        parts.append(f"{name} {format_rate(total, metric.unit)}")
    states = []
    for status in statuses:
        label = _HEALTH_STYLE[status.health][0]
        details = [f"every {status.interval:g}s"]
        if status.queued_batches:
            details.append(f"{status.queued_batches} queued")
        if status.points_dropped:
            details.append(f"{status.points_dropped} dropped")
        if status.health in _TROUBLED and status.last_error:
            details.append(status.last_error)
        states.append(f"{status.name} {label} ({', '.join(details)})")
    if states:
        parts.append("exporters: " + ", ".join(states))
    return "; ".join(parts)
