"""A gadget's table as lines of styled text, laid out once per reading to fit
the terminal's width. When it is too narrow, columns give way in this order,
kept longest first: the sort column; the gadget's first two attributes (who:
pid and command for most); its first two metrics; its next two attributes;
its other metrics; its other attributes; within each, the last in the spec's
order gives way first. Drawn as given, each line cut at the width: Rich's
Table measured and wrapped every cell at every draw, most of what the live
view cost (docs/performance.md)."""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.style import Style

from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.summary.rows import Row, short_name
from ig_metrics.ui.cells import attribute_cell, column_title, metric_cell, shown_attributes

WIDEST_CELL = 48          # an attribute value longer than this is cut, with an ellipsis
_GAP = "  "
_GAP_SEGMENT = Segment(_GAP)
_BOLD, _DIM = Style.parse("bold"), Style.parse("dim")
PAIR = 2                  # columns of one rank, alternately attributes and metrics


class _Column:
    def __init__(self, name: str, title: list[str], cells: list[str], *, right: bool,
                 style: str, rank: int) -> None:
        self.name, self.title, self.cells, self.right = name, title, cells, right
        self.style = Style.parse(style) if style else None
        self.width = max(cell_len(text) for text in (*title, *cells))
        self.rank = rank          # lower gives way later


def table_lines(spec: GadgetSpec, rows: list[Row], *, title: str, sort: str,
                width: int = 1 << 16, window: float = 0.0) -> list[list[Segment]]:
    """The title line, two header lines, a rule and a line per row (idle rows
    dimmed), with as many columns as fit in `width`."""
    values = [dict(row.attributes) for row in rows]
    cells = [[_cut(attribute_cell(attribute, row)) for attribute in spec.attributes]
             for row in values]
    columns: list[_Column] = []
    visible = set(shown_attributes(spec, cells))
    for index, attribute in enumerate(spec.attributes):
        if index not in visible:
            continue
        columns.append(_Column(attribute.name, [short_name(attribute.name), ""],
                               [row[index] for row in cells], right=False,
                               style="bold" if attribute.name == sort else "",
                               rank=_rank(attribute.name == sort, index, attribute=True)))
    for index, name in enumerate(spec.table.columns):
        columns.append(_Column(name, column_title(spec, name, window).split("\n"),
                               [metric_cell(spec, name, row) for row in rows], right=True,
                               style="bold cyan" if name == sort else "",
                               rank=_rank(name == sort, index, attribute=False)))
    shown, hidden = _fitting(columns, width)
    if hidden:
        # Short: at 80 columns the title must still say it.
        title += f" · hidden: {', '.join(short_name(column.name) for column in hidden)}"
    lines = [[Segment(title)]]
    for line in range(2):
        lines.append(_line(shown, [column.title[line] if line < len(column.title) else ""
                                   for column in shown], _BOLD))
    lines.append([Segment(_GAP.join("─" * column.width for column in shown), _DIM)])
    for index, row in enumerate(rows):
        lines.append(_line(shown, [column.cells[index] for column in shown],
                           _DIM if row.idle else None))
    return lines


def _rank(sorted_by: bool, index: int, *, attribute: bool) -> int:
    """0 for the sort column; then attributes 1–2 rank 1, metrics 1–2 rank 2,
    attributes 3–4 rank 3, other metrics rank 4, other attributes rank 5."""
    if sorted_by:
        return 0
    if index < PAIR:
        return 1 if attribute else 2
    if attribute:
        return 3 if index < 2 * PAIR else 5
    return 4


def _fitting(columns: list[_Column], width: int) -> tuple[list[_Column], list[_Column]]:
    """The columns that fit in `width`, dropping the lowest-ranked (the last of
    them first); and those dropped."""
    kept = list(columns)
    hidden: list[_Column] = []
    while len(kept) > 1 and sum(c.width for c in kept) + len(_GAP) * (len(kept) - 1) > width:
        worst = max(range(len(kept)), key=lambda index: (kept[index].rank, index))
        if kept[worst].rank == 0:
            break
        hidden.append(kept.pop(worst))
    return kept, sorted(hidden, key=columns.index)


def _cut(value: str) -> str:
    return value if len(value) <= WIDEST_CELL else value[:WIDEST_CELL - 1] + "…"


def _line(columns: list[_Column], values: list[str], style: Style | None) -> list[Segment]:
    """One line of the table: each value padded to its column, in its style
    (a header's or an idle row's, else its column's)."""
    line = []
    for position, (column, value) in enumerate(zip(columns, values, strict=True)):
        if position:
            line.append(_GAP_SEGMENT)
        pad = column.width - cell_len(value)
        padded = " " * pad + value if column.right else value + " " * pad
        line.append(Segment(padded, style or column.style))
    return line


class Lines:
    """Lines of styled segments, drawn as they are, each cut with an ellipsis
    at the terminal's width: going through a Text had Rich divide, wrap and
    restyle them again at every draw (about half of what a redraw cost)."""

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
