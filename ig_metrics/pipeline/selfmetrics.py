"""Metrics ig-metrics exports about itself, through the same pipeline: kernel
events the gadget could not record, BPF program runs and misses, and the
sampler's own work."""

from __future__ import annotations

from ig_metrics.bpf.maps import POSSIBLE_CPUS, MapReader
from ig_metrics.k8s.cgroupwrites import WRITABLE_MOUNTS
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
READ_FAILURES = MetricInfo(
    "ig_metrics.gadget.read.failures", COUNTER, "{read}",
    "Readings of a gadget's maps that failed; the run goes on with its other gadgets "
    "and exports the gadget's last good reading.")
# Which gadget a self-metric's point is about: a run may hold several.
GADGET = "ig_metrics.gadget"

# Every self-metric of the agent (the exporters' are theirs) with its attribute
# names, for the catalog page.
SELF_METRICS = ((DROPPED, (GADGET, "bpf.map.name")), (MISSED, (GADGET, "bpf.program.name")),
                (RUNS, (GADGET, "bpf.program.name")), (RUN_TIME, (GADGET, "bpf.program.name")),
                (TICK, (GADGET,)), (INTERVAL, (GADGET,)), (MAP_FILL, (GADGET, "bpf.map.name")),
                (SERIES, (GADGET,)), (HOOKS, (GADGET, *HOOK_ATTRIBUTES)),
                (READ_FAILURES, (GADGET,)), (WRITABLE_MOUNTS, ()))


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


def merge_metrics(per_gadget: list[tuple[str, list[MetricData]]]) -> list[MetricData]:
    """The self-metrics of several gadgets as one list: each point carries its
    gadget first (ig_metrics.gadget), and a metric's points are put together."""
    merged: dict[str, tuple[MetricInfo, list[Point]]] = {}
    for gadget, metrics in per_gadget:
        for data in metrics:
            _, points = merged.setdefault(data.info.name, (data.info, []))
            points.extend(Point(((GADGET, gadget), *point.attributes), point.value,
                                point.start_time_ns) for point in data.points)
    return [MetricData(info, tuple(points)) for info, points in merged.values()]


def gadget_read_metrics(failures: list[tuple[str, int]], started_ns: int) -> list[MetricData]:
    """Failed readings per gadget, from 0 for every gadget of the run."""
    return [MetricData(READ_FAILURES, tuple(Point(((GADGET, gadget),), count, started_ns)
                                            for gadget, count in failures))]
