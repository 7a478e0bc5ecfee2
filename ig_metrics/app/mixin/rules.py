"""Prometheus alerting and recording rules for ig-metrics: alerts on its own
health (from the self-metrics of pipeline/selfmetrics.py and
exporters/delivery/telemetry.py) and, per gadget, the per-node aggregations the
overview dashboard reads. Every alert names its runbook section in
docs/monitoring.md."""

from __future__ import annotations

from dataclasses import dataclass

from ig_metrics.app.gadget_catalog import metric_attributes
from ig_metrics.app.mixin.queries import (
    JOB_MATCHER,
    RECORDED_WINDOW,
    Metric,
    by,
    metric_of,
    recorded_bucket_rate_name,
    recorded_rate_name,
)
from ig_metrics.exporters.delivery import telemetry
from ig_metrics.exporters.prometheus.naming import label_name
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import COUNTER, HISTOGRAM
from ig_metrics.pipeline import selfmetrics

DEFAULT_RUNBOOK_BASE = "docs/monitoring.md"
# How long an exporter must have been failing (nothing delivered since it began
# to) for the alert: its state, not a count of attempts, which a long retry
# backoff keeps below any threshold.
FAILING_FOR = "5m"
MAP_FULL_RATIO = 0.9
# Above this share of its interval, a reading spaces the next one out
# (app/agent.py): the sampler no longer keeps its interval.
SAMPLER_SHARE = 0.5
EXPORTER = ("job", "instance", label_name(telemetry.NAME), label_name(telemetry.TYPE))
AGENT = ("job", "instance")


def _self_metrics() -> dict[str, Metric]:
    found = {info.name: metric_of(info, names) for info, names in selfmetrics.SELF_METRICS}
    found.update({info.name: metric_of(info, names) for info, names in telemetry.EXPORT_METRICS})
    return found


SELF = _self_metrics()


ATTEMPTS = SELF[telemetry.ATTEMPTS.name]
FAILURES = SELF[telemetry.FAILURES.name]
DROPPED_POINTS = SELF[telemetry.DROPPED.name]
HEALTH = SELF[telemetry.HEALTH.name]
QUEUE_DEPTH = SELF[telemetry.QUEUE_DEPTH.name]
KERNEL_DROPPED = SELF[selfmetrics.DROPPED.name]
KERNEL_MISSED = SELF[selfmetrics.MISSED.name]
MAP_FILL = SELF[selfmetrics.MAP_FILL.name]
TICK = SELF[selfmetrics.TICK.name]
SAMPLER_INTERVAL = SELF[selfmetrics.INTERVAL.name]
SERIES = SELF[selfmetrics.SERIES.name]
HEALTH_LABEL = label_name("ig_metrics.exporter.health")
OVERFLOW_LABEL = label_name("otel.metric.overflow")
FAILING = f'{{{HEALTH_LABEL}="failing"}}'
LOSSES, OVERFLOW = '{reason!="overflow"}', '{reason="overflow"}'
OVERFLOWED = f'{{{OVERFLOW_LABEL}="true"}}'     # any series the sampler folded


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    expr: str
    duration: str               # `for:`
    severity: str
    summary: str
    description: str            # what happened and what to do
    runbook: str                # the anchor of its section in docs/monitoring.md

    def rule(self, runbook_base: str) -> dict:
        timing = {"for": self.duration} if self.duration != "0m" else {}
        return {"alert": self.name, "expr": self.expr, **timing,
                "labels": {"severity": self.severity},
                "annotations": {"summary": self.summary, "description": self.description,
                                "runbook_url": f"{runbook_base}#{self.runbook}"}}


def _increase(metric: Metric, selector: str, group: tuple[str, ...], window: str) -> str:
    return f"sum{by(group)} (increase({metric.prometheus}{selector}[{window}]))"


ALERTS = (
    Alert(
        "IgMetricsExporterFailing",
        f"max{by(EXPORTER)} ({HEALTH.prometheus}{FAILING}) == 1",
        FAILING_FOR, "warning",
        "ig-metrics exporter {{ $labels.otel_component_name }} on {{ $labels.instance }} "
        "has delivered nothing for " + FAILING_FOR,
        "Exporter {{ $labels.otel_component_name }} ({{ $labels.otel_component_type }}) "
        f"has been failing for {FAILING_FOR}: none of its attempts succeeded, however "
        "far apart its retries are, or the collector refuses its data for good. Its "
        "data waits in its queue until the queue is full, then is dropped. The "
        "error_type label of "
        f"{FAILURES.prometheus} and the agent's log say what fails; then check the "
        "collector's address, TLS and credentials in the profile.",
        "exporter-failing"),
    Alert(
        "IgMetricsExporterDroppingPoints",
        f"{_increase(DROPPED_POINTS, LOSSES, (*EXPORTER, 'reason'), '5m')}"
        " > 0",
        "0m", "warning",
        "ig-metrics exporter {{ $labels.otel_component_name }} on {{ $labels.instance }} "
        "dropped data ({{ $labels.reason }})",
        "Exporter {{ $labels.otel_component_name }} dropped {{ $value }} data points "
        "in 5m because of {{ $labels.reason }}: queue_full (its queue of delta "
        "intervals overflowed while the collector was slow or down), expired (they "
        "waited longer than their time to live) or rejected (the collector refused "
        "them: the agent's log and the exporter's health say why, and what to change). "
        "Those counts are lost. Fix the collector, or give the exporter a larger queue "
        "(queue.max_bytes) or a longer interval.",
        "exporter-dropping-points"),
    Alert(
        "IgMetricsSeriesOverflow",
        f"{_increase(DROPPED_POINTS, OVERFLOW, EXPORTER, '10m')} > 0\n"
        f"or\ncount{by(AGENT)} ({OVERFLOWED})",
        "5m", "info",
        "ig-metrics on {{ $labels.instance }} folds series into the overflow series",
        "More series than the limit (the exporter's limits.max_series, or the "
        "profile's sampler.max_series) exist: the ones beyond it are summed into one "
        "series with otel_metric_overflow=\"true\". Totals stay right, but per-process "
        "or per-peer detail is lost for them. Raise the limit if the memory allows, or "
        "drop high-cardinality attributes with the profile's attributes.exclude.",
        "series-overflow"),
    Alert(
        "IgMetricsBpfMapNearlyFull",
        f"max{by((*AGENT, label_name('bpf.map.name')))} ({MAP_FILL.prometheus}) "
        f"> {MAP_FULL_RATIO}",
        "10m", "warning",
        "BPF map {{ $labels.bpf_map_name }} of ig-metrics on {{ $labels.instance }} "
        "is {{ $value | humanizePercentage }} full",
        f"The kernel map {{{{ $labels.bpf_map_name }}}} has had more than "
        f"{MAP_FULL_RATIO:.0%} of its entries in use for 10m. Once full, events with "
        f"new keys are dropped ({KERNEL_DROPPED.prometheus}). Look for many short-lived "
        "processes or peers (the gadget's series count), raise the map size if the "
        "gadget has a parameter for it, or lower --idle-expiry.",
        "bpf-map-nearly-full"),
    Alert(
        "IgMetricsKernelEventsDropped",
        f"{_increase(KERNEL_DROPPED, '', (*AGENT, label_name('bpf.map.name')), '5m')} > 0",
        "0m", "warning",
        "ig-metrics on {{ $labels.instance }} lost kernel events: map "
        "{{ $labels.bpf_map_name }} was full",
        "The gadget's BPF programs could not record {{ $value }} events in 5m because "
        "map {{ $labels.bpf_map_name }} was full: the gadget's counts are short by "
        "that much. See the map's fill (BPF map nearly full) and reduce the keys or "
        "raise the map size.",
        "kernel-events-dropped"),
    Alert(
        "IgMetricsBpfRunsMissed",
        f"{_increase(KERNEL_MISSED, '', (*AGENT, label_name('bpf.program.name')), '5m')} > 0",
        "0m", "info",
        "BPF program {{ $labels.bpf_program_name }} of ig-metrics on {{ $labels.instance }} "
        "missed runs",
        "The kernel skipped {{ $value }} runs of {{ $labels.bpf_program_name }} in 5m "
        "because another BPF program was running on the same CPU (recursion misses): "
        "those events were not counted. Look for other BPF tools attached to the same "
        "hooks on the node (bpftool prog list).",
        "bpf-runs-missed"),
    Alert(
        "IgMetricsSamplerSlow",
        f"max{by(AGENT)} ({TICK.prometheus})\n> {SAMPLER_SHARE} * "
        f"max{by(AGENT)} ({SAMPLER_INTERVAL.prometheus} > 0)",
        "5m", "warning",
        "ig-metrics' sampler on {{ $labels.instance }} is slower than its interval",
        "Reading the kernel maps takes more than half of the sampler's interval, so "
        "ig-metrics spaces its readings out to twice the reading time: data arrives "
        "later than the interval says and the agent takes much of a CPU. The cost "
        "grows with the number of series: lower it (attributes.exclude, "
        "--idle-expiry, sampler.max_series) or raise the interval.",
        "sampler-slow"),
    Alert(
        "IgMetricsAgentDown",
        f"up{{{JOB_MATCHER}}} == 0",
        "5m", "critical",
        "ig-metrics on {{ $labels.instance }} cannot be scraped",
        "Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) "
        "for 5m: no metrics of that node arrive. Check that the pod runs (kubectl -n "
        "ig-metrics get pods -o wide), its log, and ig-metrics doctor on the node.",
        "agent-down"),
    Alert(
        "IgMetricsAgentAbsent",
        f"absent(up{{{JOB_MATCHER}}})",
        "15m", "critical",
        "No ig-metrics target is scraped at all",
        "Prometheus has no ig-metrics scrape target: the DaemonSet is gone, or the "
        "PodMonitor (or scrape config) no longer selects its pods. Check "
        "kubectl -n ig-metrics get daemonset,podmonitor and Prometheus' targets page.",
        "agent-absent"),
)


def alert_groups(runbook_base: str = DEFAULT_RUNBOOK_BASE) -> list[dict]:
    return [{"name": "ig-metrics.alerts",
             "rules": [alert.rule(runbook_base) for alert in ALERTS]}]


def gadget_metrics(spec: GadgetSpec) -> list[Metric]:
    return [metric_of(metric, metric_attributes(spec, metric)) for metric in spec.metrics]


@dataclass(frozen=True, slots=True)
class Recorded:
    """A recording rule: per node (job, instance), over RECORDED_WINDOW."""

    record: str
    expr: str
    source: Metric


def recorded(spec: GadgetSpec) -> list[Recorded]:
    """The per-node aggregations of a gadget's metrics the overview dashboard
    reads: every counter's rate, every histogram's bucket rates (classic)."""
    rules = []
    for metric in gadget_metrics(spec):
        if metric.kind == COUNTER:
            rules.append(Recorded(recorded_rate_name(metric),
                                  f"sum{by(AGENT)} (rate({metric.prometheus}"
                                  f"[{RECORDED_WINDOW}]))", metric))
        elif metric.kind == HISTOGRAM:
            rules.append(Recorded(recorded_bucket_rate_name(metric),
                                  f"sum{by((*AGENT, 'le'))} (rate({metric.bucket}"
                                  f"[{RECORDED_WINDOW}]))", metric))
    return rules


def recording_groups(specs: list[GadgetSpec]) -> list[dict]:
    return [{"name": f"ig-metrics.{spec.name}.recording",
             "rules": [{"record": rule.record, "expr": rule.expr} for rule in recorded(spec)]}
            for spec in specs]
