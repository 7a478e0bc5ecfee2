"""Metrics ig-metrics exports about itself, through the same pipeline: kernel
events the gadget could not record, BPF program runs and misses, and the
sampler's own work."""

from __future__ import annotations

from ig_metrics.bpf.maps import POSSIBLE_CPUS, MapReader
from ig_metrics.model.snapshot import COUNTER, GAUGE, MetricData, MetricInfo, Point

DROPPED = MetricInfo(
    "ig_metrics.kernel.dropped_events", COUNTER, "{event}",
    "Events the gadget's BPF programs could not record because a map was full.")
MISSED = MetricInfo(
    "ig_metrics.kernel.missed_events", COUNTER, "{event}",
    "Runs of a BPF program the kernel skipped: because another BPF program was "
    "running on the same CPU (recursion_misses), or, for a kprobe or kretprobe, "
    "because the kernel could not track the call (its nmissed).")
RUNS = MetricInfo(
    "ig_metrics.bpf.runs", COUNTER, "{run}",
    "Runs of each BPF program; counted only while kernel.bpf_stats_enabled=1.")
RUN_TIME = MetricInfo(
    "ig_metrics.bpf.run_time", COUNTER, "s",
    "Time spent in each BPF program; counted only while kernel.bpf_stats_enabled=1.")
TICK = MetricInfo(
    "ig_metrics.sampler.tick.duration", GAUGE, "s",
    "How long the last read of the kernel maps took.")
INTERVAL = MetricInfo(
    "ig_metrics.sampler.interval", GAUGE, "s",
    "How often the sampler is asked to read the kernel maps; a reading that takes "
    "more than half of it spaces the next one out.")
MAP_FILL = MetricInfo(
    "ig_metrics.bpf.map.fill", GAUGE, "1",
    "Share of each hash or slots map's entries in use at the last read; a full map "
    "drops new keys (ig_metrics.kernel.dropped_events).")
SERIES = MetricInfo(
    "ig_metrics.series", GAUGE, "{series}",
    "Series of the gadget in the last snapshot.")
HOOKS = MetricInfo(
    "ig_metrics.gadget.hook", GAUGE, "1",
    "1 for each hook a metric of the gadget counts through on this kernel; "
    "bpf.hook.fallback is true where it stands in for a hook the kernel lacks.")
HOOK_ATTRIBUTES = ("gadget.metric", "bpf.hook.kind", "bpf.hook.target", "bpf.hook.fallback")

# Every self-metric with its attribute names, for the catalog page.
SELF_METRICS = ((DROPPED, ("bpf.map.name",)), (MISSED, ("bpf.program.name",)),
                (RUNS, ("bpf.program.name",)), (RUN_TIME, ("bpf.program.name",)),
                (TICK, ()), (INTERVAL, ()), (MAP_FILL, ("bpf.map.name",)), (SERIES, ()),
                (HOOKS, HOOK_ATTRIBUTES))


class KernelSelfMetrics:
    """Reads the gadget's `drops` array and its programs' statistics."""

    def __init__(self, spec, program, started_ns: int) -> None:
        self.spec = spec
        self.program = program
        self.started_ns = started_ns
        self.drops = MapReader(program.table("drops"), "drops") \
            if spec.drops and program.has_table("drops") else None
        self.hooks = _hook_points(spec, program.plan, started_ns)

    def dropped(self) -> dict[str, int]:
        counts = {name: 0 for name in self.spec.drops}
        if self.drops is None:
            return counts
        batch = self.drops.read()
        for index in range(batch.count):
            reason = int.from_bytes(batch.key(index), "little")
            if reason >= len(self.spec.drops):
                continue
            value = batch.value(index)
            stride = batch.cpu_stride or batch.value_size
            cpus = POSSIBLE_CPUS if batch.cpu_stride else 1
            counts[self.spec.drops[reason]] += sum(
                int.from_bytes(value[cpu * stride:cpu * stride + 8], "little")
                for cpu in range(cpus))
        return counts

    def metrics(self, now_ns: int, tick_seconds: float, series: int, *,
                interval: float = 0.0, map_fill: dict[str, float] | None = None
                ) -> list[MetricData]:
        start = self.started_ns
        dropped = tuple(Point((("bpf.map.name", name),), count, start)
                        for name, count in self.dropped().items())
        stats = self.program.program_stats() if self.program.bpf is not None else []
        missed = tuple(Point((("bpf.program.name", stat.name),), stat.missed, start)
                       for stat in stats)
        runs = tuple(Point((("bpf.program.name", stat.name),), stat.run_count, start)
                     for stat in stats)
        run_time = tuple(Point((("bpf.program.name", stat.name),), stat.run_time_ns / 1e9, start)
                         for stat in stats)
        return [
            MetricData(DROPPED, dropped),
            MetricData(MISSED, missed),
            MetricData(RUNS, runs),
            MetricData(RUN_TIME, run_time),
            MetricData(TICK, (Point((), tick_seconds, now_ns),)),
            MetricData(INTERVAL, (Point((), interval, now_ns),)),
            MetricData(MAP_FILL, tuple(Point((("bpf.map.name", name),), fill, now_ns)
                                       for name, fill in sorted((map_fill or {}).items()))),
            MetricData(SERIES, (Point((), series, now_ns),)),
            MetricData(HOOKS, self.hooks),
        ]


def _hook_points(spec, plan, started_ns: int) -> tuple[Point, ...]:
    points = []
    for metric, choices in plan.metric_hooks(tuple(m.name for m in spec.metrics)).items():
        for choice in choices:
            for hook in choice.attached:
                points.append(Point(tuple(zip(HOOK_ATTRIBUTES, (
                    metric, hook.kind, hook.target, str(choice.uses_fallback).lower()))),
                    1, started_ns))
    return tuple(points)
