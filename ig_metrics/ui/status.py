"""The lines under the tables: one per exporter (its health and how its export
goes: a pull exporter's last scrape and by whom, a push exporter's last
export), the samplers' own figures, and the one-line summary per gadget that
--no-tui logs instead of the table."""

from __future__ import annotations

from rich.text import Text

from ig_metrics.exporters.base import ExporterStatus
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import HISTOGRAM, Snapshot
from ig_metrics.summary.rows import gadget_table
from ig_metrics.ui.cells import HEALTH_STYLE, TROUBLED, format_rate, format_seconds


def _ago(now_ns: int, then_ns: int) -> str:
    return f"{max(0, now_ns - then_ns) / 1e9:.0f}s ago"


def export_quality(status: ExporterStatus, now_ns: int) -> list[str]:
    """What the export is doing, in short phrases: interval (and whether load
    widened it), last scrape (pull) or last export (push), points, queue,
    drops, next retry."""
    every = f"every {status.interval:g}s"
    if status.configured_interval and status.interval > status.configured_interval:
        every += f" (widened from {status.configured_interval:g}s by load)"
    parts = [every]
    if status.pull:
        parts.append(f"last scrape {_ago(now_ns, status.last_pull_ns)} by "
                     f"{status.last_puller or 'an unknown address'}"
                     if status.last_pull_ns else "not scraped yet")
    elif status.last_success_ns:
        parts.append(f"last export {_ago(now_ns, status.last_success_ns)}"
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
    mark, style = HEALTH_STYLE[status.health.value]
    text = Text()
    text.append(f"{mark} ", style=style)
    text.append(f"{status.name}", style="bold")
    text.append(f" ({status.type} {status.target}) ")
    text.append(status.health.value, style=style)
    text.append(", " + ", ".join(export_quality(status, now_ns)))
    if status.health.value in TROUBLED and status.last_error:
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


def summary_line(spec: GadgetSpec, previous: Snapshot | None, current: Snapshot,
                 statuses: list[ExporterStatus]) -> str:
    """One line per interval for logs: the gadget's series, each counter's rate
    summed over them, and the exporters' states."""
    table = gadget_table(spec, previous, current, top=1 << 30, sort=spec.table.sort)
    parts = [f"{spec.name}: {table.series} series"]
    for name in spec.table.columns:
        metric = spec.metric(name)
        if metric.kind == HISTOGRAM:
            continue
        total = sum(cell for row in table.rows
                    if isinstance(cell := row.cells.get(name), int | float))
        parts.append(f"{name} {format_rate(total, metric.unit)}")
    states = []
    for status in statuses:
        details = [f"every {status.interval:g}s"]
        if status.queued_batches:
            details.append(f"{status.queued_batches} queued")
        if status.points_dropped:
            details.append(f"{status.points_dropped} dropped")
        if status.health.value in TROUBLED and status.last_error:
            details.append(status.last_error)
        states.append(f"{status.name} {status.health.value} ({', '.join(details)})")
    if states:
        parts.append("exporters: " + ", ".join(states))
    return "; ".join(parts)
