"""The live terminal view of a run: each gadget's busiest series (a section per
gadget, or one gadget and a line for each other), live rows first, laid out to
fit the terminal, then a line per exporter, the samplers' line and the keys.
Redrawn by Rich with each reading, and at once for a key (ui/keys.py reads
them) or a resize."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from ig_metrics.exporters.base import ExporterStatus
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import COUNTER, Snapshot
from ig_metrics.summary.rows import (
    GadgetTable,
    RecentWindow,
    check_sort,
    gadget_table,
    short_name,
    sort_keys,
)
from ig_metrics.ui.cells import format_total
from ig_metrics.ui.layout import Lines, table_lines
from ig_metrics.ui.status import exporter_line, sampler_line

SECTION_LINES = 4             # a section's title, two header lines and its rule
MIN_ROWS = 3                  # rows a section keeps however small the terminal
KEYS_HELP = "keys: s sort · / filter · i idle rows · p pause · q quit"
KEYS_HELP_SEVERAL = "keys: s sort · / filter · i idle rows · g gadget · p pause · q quit"


def elapsed_text(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _line(text: str, style: str = "") -> Text:
    """A line that stays one line: cut at the width, never wrapped."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


class LiveView:
    """Redraws the tables from the latest snapshot; call `update` at ~2 Hz.
    `keys`: whether keys are read (the help line says which); `on_quit` is
    called for q."""

    def __init__(self, specs: GadgetSpec | list[GadgetSpec], *, top: int,
                 sort: str | None = None, sorts: list[str] | None = None, title: str,
                 console: Console | None = None, keys: bool = False,
                 on_quit: Callable[[], None] | None = None) -> None:
        self.specs = [specs] if isinstance(specs, GadgetSpec) else list(specs)
        self.sorts = list(sorts or [check_sort(spec, sort) for spec in self.specs])
        self.top = top
        self.title = title
        self.console = console or Console()
        self.keys = keys
        self.on_quit = on_quit or (lambda: None)
        self._live = Live(console=self.console, auto_refresh=False, transient=False,
                          redirect_stdout=True, redirect_stderr=True)
        self._lock = threading.RLock()
        self._window = RecentWindow()
        self._previous: Snapshot | None = None
        self._current: Snapshot | None = None
        self._base: Snapshot | None = None
        self._kept: list[dict] = [{} for _ in self.specs]
        self._tables: list[GadgetTable] = []
        self._statuses: list[ExporterStatus] = []
        self._started = time.monotonic()
        self._shown: tuple | None = None        # what the screen shows now
        self._size = self.console.size
        # What the keys change.
        self.show_idle = True
        self.matching = ""
        self.typing: str | None = None           # the filter being typed, after '/'
        self.focus: int | None = None            # one gadget shown in full, or all
        self.paused = False

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)

    # --- readings -----------------------------------------------------------------------
    def update(self, snapshot: Snapshot | None, statuses: list[ExporterStatus]) -> None:
        """Redraw with a new snapshot, when an exporter's state changed between
        two, or when the terminal was resized: drawing is what the live view
        costs, and the workers' progress after each reading (last export,
        points) can wait for the next one."""
        with self._lock:
            self._statuses = statuses
            if snapshot is None:
                if self._shown != ():
                    self._shown = ()
                    self._live.update(_line(f"{self.title}: waiting for the first reading…"),
                                      refresh=True)
                return
            if not self.paused and (self._current is None or snapshot.seq != self._current.seq):
                self._previous, self._current = self._current, snapshot
                self._base = self._window.base(snapshot)
                self._compute()
            self._draw()

    def _compute(self) -> None:
        if self._current is None:
            return
        self._tables = [gadget_table(spec, self._previous, self._current, top=self.top,
                                     sort=sort, kept=kept, window=self._base,
                                     show_idle=self.show_idle, matching=self.matching)
                        for spec, sort, kept in zip(self.specs, self.sorts, self._kept,
                                                    strict=True)]

    def _draw(self, force: bool = False) -> None:
        if self._current is None:
            return
        size = self.console.size
        if size != self._size:
            # A resize re-wraps what is on the screen: cleared, then drawn anew
            # (else fragments of the old frame stay).
            self._size, force = size, True
            self.console.clear()
        shown = (self._current.seq, size, self.show_idle, self.matching, self.typing,
                 self.focus, self.paused, tuple(self.sorts),
                 *(_news(status) for status in self._statuses))
        if shown == self._shown and not force:
            return
        self._shown = shown
        self._live.update(self.render(size.width, size.height), refresh=True)

    # --- drawing ------------------------------------------------------------------------
    def render(self, width: int, height: int) -> Group:
        """The frame for a terminal of `width` × `height`: the footer (exporters,
        samplers, keys) always on it; the tables' rows share what is left."""
        now_ns = self._current.time_ns if self._current else time.time_ns()
        footer = [exporter_line(status, now_ns) for status in self._statuses]
        for line in footer:
            line.no_wrap, line.overflow = True, "ellipsis"
        sampler = sampler_line(self._current) if self._current else None
        if sampler is not None:
            sampler.no_wrap, sampler.overflow = True, "ellipsis"
            footer.append(sampler)
        footer.append(self._keys_line())
        header = _line(self._header(), "bold")
        full = [index for index in range(len(self.specs))
                if self.focus is None or index == self.focus]
        others = [_line(self._gadget_line(index), "dim") for index in range(len(self.specs))
                  if index not in full]
        room = height - 1 - len(footer) - len(others) - 1 - len(full) * (SECTION_LINES + 1)
        per_section = max(MIN_ROWS, min(self.top, room // max(1, len(full))))
        lines: list[list[Segment]] = []
        for index in full:
            spec, table = self.specs[index], self._tables[index]
            if lines:
                lines.append([])        # a blank line between two gadgets' tables
            lines.extend(table_lines(spec, table.rows[:per_section],
                                     title=self._section_title(index, per_section),
                                     sort=self.sorts[index], width=width,
                                     window=table.window))
        return Group(header, Lines(lines), *others, *footer)

    def _header(self) -> str:
        parts = [self.title, elapsed_text(time.monotonic() - self._started)]
        if self.matching:
            parts.append(f"filter '{self.matching}'")
        if not self.show_idle:
            parts.append("idle rows hidden")
        if self.paused:
            parts.append("PAUSED (p resumes)")
        return " · ".join(parts)

    def _section_title(self, index: int, room: int) -> str:
        spec, table = self.specs[index], self._tables[index]
        shown = min(room, len(table.rows))
        of = table.matching if self.matching else table.series
        text = f"{spec.name}: {shown} of {of:,} series" + \
            (f" matching (of {table.series:,})" if self.matching else "")
        text += f" · sort {short_name(self.sorts[index])}"
        if table.idle:
            text += f" · {table.idle:,} idle" + ("" if self.show_idle else " (hidden)")
        return text

    def _gadget_line(self, index: int) -> str:
        """A gadget not shown in full: its series and totals, in one line."""
        spec, table = self.specs[index], self._tables[index]
        totals = ", ".join(f"{short_name(name)} {format_total(table.totals.get(name, 0), unit)}"
                           for name in spec.table.columns
                           for unit in [spec.metric(name).unit]
                           if spec.metric(name).kind == COUNTER)
        return f"{spec.name}: {table.series:,} series, {table.series - table.idle:,} live" + \
            (f"; {totals}" if totals else "") + " (g shows it)"

    def _keys_line(self) -> Text:
        if self.typing is not None:
            return _line(f"filter: {self.typing}▏ (enter applies, esc clears)", "bold")
        if not self.keys:
            return _line("")
        return _line(KEYS_HELP_SEVERAL if len(self.specs) > 1 else KEYS_HELP, "dim")

    # --- keys ---------------------------------------------------------------------------
    def on_key(self, key: str) -> None:
        """A key typed on the terminal (ui/keys.py): its effect, drawn at once."""
        with self._lock:
            if self.typing is not None:
                self._typed(key)
            elif key == "q":
                self.on_quit()
                return
            elif key == "s":
                self._next_sort()
            elif key == "/":
                self.typing = self.matching
            elif key == "i":
                self.show_idle = not self.show_idle
            elif key in ("g", "tab") and len(self.specs) > 1:
                self.focus = 0 if self.focus is None else \
                    None if self.focus == len(self.specs) - 1 else self.focus + 1
            elif key in ("p", " "):
                self.paused = not self.paused
            else:
                return
            self._compute()
            self._draw(force=True)

    def _typed(self, key: str) -> None:
        typing = self.typing or ""
        if key == "enter":
            self.matching, self.typing = typing.strip(), None
        elif key == "escape":
            self.matching, self.typing = "", None
        elif key == "backspace":
            self.typing = typing[:-1]
        elif len(key) == 1 and key.isprintable():
            self.typing = typing + key

    def _next_sort(self) -> None:
        for index, spec in enumerate(self.specs):
            if self.focus is not None and index != self.focus:
                continue
            keys = sort_keys(spec)
            current = keys.index(self.sorts[index]) if self.sorts[index] in keys else -1
            self.sorts[index] = keys[(current + 1) % len(keys)]


def _news(status: ExporterStatus) -> tuple:
    """What of an exporter's line is worth a redraw before the next snapshot."""
    return (status.name, status.health, status.last_error, status.interval,
            status.queued_batches, status.points_dropped, round(status.retry_in))
