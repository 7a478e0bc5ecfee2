"""The live table's rows, ranked over every series though only the rows shown
are computed in full; and when it redraws: with each new snapshot, and
between two only when an exporter's state changes (health, error, retry,
backlog, drops), not for the progress of its exports, which shows with the
next snapshot."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from ig_metrics.exporters.base import ExporterStatus, Health
from ig_metrics.gadgets import resolve
from ig_metrics.model.snapshot import (
    COUNTER,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)
from ig_metrics.summary.rows import RecentWindow, build_rows, gadget_table
from ig_metrics.ui.live import LiveView

NOW = 1_700_000_100_000_000_000
SENT = MetricInfo("tcp.sent", COUNTER, "By", "")


def snapshot(seq: int, sent: int) -> Snapshot:
    attributes = (("process.pid", 42), ("process.command", "curl"))
    return Snapshot(seq, NOW + seq * 1_000_000_000, "tcp", (),
                    (MetricData(SENT, (Point(attributes, sent, NOW),)),))


def test_rows_rank_every_series_by_the_sort_column_and_show_the_top_ones():
    spec = resolve("tcp")
    bounds = spec.metric("tcp.connect.duration").bounds
    connect = MetricInfo("tcp.connect.duration", HISTOGRAM, "s", "", bounds)

    def reading(seq: int) -> Snapshot:
        sent, latencies = [], []
        for pid, (rate, slot) in {1: (10, 3), 2: (30, 1), 3: (20, 9)}.items():
            identity = (("process.pid", pid),)
            sent.append(Point(identity, rate * seq, NOW))
            counts = [0] * (len(bounds) + 1)
            counts[slot] = 4 * seq
            latencies.append(Point(identity, HistogramValue(tuple(counts), 1.0 * seq, 4 * seq),
                                   NOW))
        return Snapshot(seq, NOW + seq * 2_000_000_000, "tcp", (),
                        (MetricData(SENT, tuple(sent)), MetricData(connect, tuple(latencies))))

    by_rate = build_rows(spec, reading(1), reading(2), top=2, sort="tcp.sent")
    assert [(dict(row.attributes)["process.pid"], row.cells["tcp.sent"]) for row in by_rate] \
        == [(2, 15.0), (3, 10.0)]                   # bytes per second over 2 s
    assert by_rate[0].cells["tcp.connect.duration"] == (bounds[1], bounds[1])
    by_latency = build_rows(spec, reading(1), reading(2), top=1, sort="tcp.connect.duration")
    assert [dict(row.attributes)["process.pid"] for row in by_latency] == [3]
    assert by_latency[0].cells == {"tcp.sent": 10.0, "tcp.received": None,
                                   "tcp.connections.opened": None, "tcp.retransmits": None,
                                   "tcp.resets": None,
                                   "tcp.connect.duration": (bounds[9], bounds[9])}


def test_percentiles_are_over_the_recent_window_and_idle_rows_sink():
    """A series whose latency moves shows the new bucket once the window has
    moved past the old observations; a series that stopped changing is idle and
    ranks below every live one, whatever its rate."""
    spec = resolve("tcp")
    bounds = spec.metric("tcp.connect.duration").bounds
    connect = MetricInfo("tcp.connect.duration", HISTOGRAM, "s", "", bounds)
    fast, slow = 3, 9                                   # bucket slots: ≤ 3µs, ≤ 255µs

    def reading(seq: int, slots: dict[int, int], sent: dict[int, int]) -> Snapshot:
        points, latencies = [], []
        for pid, count in sent.items():
            points.append(Point((("process.pid", pid),), count, NOW))
        for slot, count in slots.items():
            counts = [0] * (len(bounds) + 1)
            counts[slot] = count
            latencies.append(Point((("process.pid", 1),),
                                   HistogramValue(tuple(counts), 0.0, count), NOW))
        merged = [0] * (len(bounds) + 1)
        for value in latencies:
            merged = [a + b for a, b in zip(merged, value.value.counts, strict=True)]
        histogram = (Point((("process.pid", 1),), HistogramValue(tuple(merged), 0.0,
                                                                 sum(merged)), NOW),)
        return Snapshot(seq, NOW + seq * 1_000_000_000, "tcp", (),
                        (MetricData(SENT, tuple(points)), MetricData(connect, histogram)))

    window = RecentWindow(seconds=10)
    kept: dict = {}
    tables = []
    # pid 1 connects fast for 12 s, then slowly; pid 2 sends much, then stops at 5 s.
    for second in range(1, 31):
        slots = {fast: 10 * min(second, 12), slow: 10 * max(0, second - 12)}
        sent = {1: 100 * second, 2: 1_000_000 * min(second, 5)}
        current = reading(second, {slot: count for slot, count in slots.items() if count},
                          sent)
        previous = tables[-1][0] if tables else None
        table = gadget_table(spec, previous, current, top=10, sort="tcp.sent", kept=kept,
                             window=window.base(current))
        tables.append((current, table))
    by_second = {second: table for second, (_, table) in enumerate(tables, start=1)}
    latency = {second: next(row for row in by_second[second].rows
                            if dict(row.attributes)["process.pid"] == 1
                            ).cells["tcp.connect.duration"]
               for second in (10, 30)}
    assert latency[10] == (bounds[fast], bounds[fast])
    assert latency[30] == (bounds[slow], bounds[slow])       # the fast ones left the window
    assert 10 <= by_second[30].window < 20
    # pid 2: busiest while it sends, idle and last once it has stopped for a window.
    assert [dict(row.attributes)["process.pid"] for row in by_second[4].rows] == [2, 1]
    assert [dict(row.attributes)["process.pid"] for row in by_second[30].rows] == [1, 2]
    assert by_second[30].rows[1].idle and by_second[30].idle == 1
    assert by_second[30].rows[1].totals["tcp.sent"] == 5_000_000          # exact, kept
    hidden = gadget_table(spec, tables[-2][0], tables[-1][0], top=10, sort="tcp.sent",
                          window=window.base(tables[-1][0]), show_idle=False)
    assert [dict(row.attributes)["process.pid"] for row in hidden.rows] == [1]


class Screen:
    """A terminal for the view: counts the frames drawn on it."""

    def __init__(self) -> None:
        self.output = io.StringIO()
        self.console = Console(file=self.output, force_terminal=True, width=160, height=40)
        self.seen = 0

    def redrawn(self) -> bool:
        size = len(self.output.getvalue())
        drawn, self.seen = size > self.seen, size
        return drawn


def test_the_view_redraws_for_a_new_snapshot_or_a_new_exporter_state_only():
    screen = Screen()
    healthy = ExporterStatus("central", "otlp-grpc", "collector:4317", Health.HEALTHY, 10.0,
                             exports_ok=1, last_success_ns=NOW, points_exported=10)
    with LiveView(resolve("tcp"), top=20, sort="tcp.sent", title="test",
                  console=screen.console) as view:
        view.update(None, [healthy])
        assert screen.redrawn()
        view.update(None, [healthy])
        assert not screen.redrawn()
        view.update(snapshot(1, 100), [healthy])
        assert screen.redrawn()
        view.update(snapshot(1, 100), [healthy])
        assert not screen.redrawn()
        progressed = dataclasses.replace(healthy, exports_ok=2, last_success_ns=NOW + 1,
                                         points_exported=20, last_duration=0.01)
        view.update(snapshot(1, 100), [progressed])
        assert not screen.redrawn()
        failing = dataclasses.replace(progressed, health=Health.FAILING, retry_in=4.0,
                                      last_error="gRPC UNAVAILABLE")
        view.update(snapshot(1, 100), [failing])
        assert screen.redrawn()
        view.update(snapshot(1, 100), [dataclasses.replace(failing, retry_in=3.0)])
        assert screen.redrawn()
        view.update(snapshot(2, 300), [dataclasses.replace(failing, retry_in=3.0)])
        assert screen.redrawn()
    assert "200 B/s" in screen.output.getvalue()       # (300 - 100) bytes over 1 s


def test_the_pid_column_shows_only_where_the_profile_kept_process_pid():
    """tcp's process.pid is opt-in: a table whose series lack it (the default)
    has no pid column, one whose series carry it (opted in) shows each pid."""
    from ig_metrics.ui.live import table_lines

    spec = resolve("tcp")

    def header_and_rows(attributes) -> list[str]:
        reading = [Snapshot(seq, NOW + seq * 1_000_000_000, "tcp", (),
                            (MetricData(SENT, (Point(attributes, 100 * seq, NOW),)),))
                   for seq in (1, 2)]
        rows = build_rows(spec, *reading, top=5, sort="tcp.sent")
        return ["".join(segment.text for segment in line)
                for line in table_lines(spec, rows, title="t", sort="tcp.sent")]

    by_command = header_and_rows((("process.command", "curl"),))
    assert "pid" not in by_command[1].split() and "command" in by_command[1].split()
    by_pid = header_and_rows((("process.pid", 4242), ("process.command", "curl")))
    assert by_pid[1].split()[:2] == ["pid", "command"]
    assert by_pid[-1].split()[:2] == ["4242", "curl"]
