"""Grafana dashboards as JSON, generated from the gadget specs and the
self-metrics: one per gadget (rates of its counters, quantiles and heatmaps of
its histograms, classic and native), an overview over the recording rules, and
"ig-metrics health" (exporters, queues, drops, overflow, maps, sampler)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ig_metrics.app.mixin import rules
from ig_metrics.app.mixin.queries import (
    ATTRIBUTE_VARIABLES,
    GADGET_LABEL,
    JOB,
    JOB_MATCHER,
    NODE,
    QUANTILES,
    SERVICE_MATCHER,
    TARGET_INFO,
    Metric,
    by,
    classic_heatmap,
    classic_quantile,
    matchers,
    native_heatmap,
    native_quantile,
    rate,
    recorded_bucket_rate_name,
    recorded_rate_name,
    variable_matchers,
)
from ig_metrics.exporters.delivery import telemetry
from ig_metrics.exporters.prometheus.naming import label_name
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import COUNTER, GAUGE
from ig_metrics.pipeline import selfmetrics

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
WIDTH = 24
PANEL_HEIGHT = 8
TAGS = ["ig-metrics"]
# Labels a gadget's panels group by, the first the metric carries.
GROUP_PREFERENCE = ("process.command", "syscall.name", "system.device", "server.address",
                    "dns.question.type")
_ANNOTATION = re.compile(r"^\{[^}]*\}$")


def grafana_unit(unit: str, rated: bool) -> str:
    """Grafana's unit id for a metric unit, per second when `rated`."""
    if unit == "By":
        return "Bps" if rated else "bytes"
    if unit == "bit":
        return "bps" if rated else "bits"
    if unit == "s":
        return "percentunit" if rated else "s"     # seconds per second: a busy share
    if unit == "1":
        return "percentunit"
    if _ANNOTATION.match(unit) or not unit:
        return "cps" if rated else "short"
    return unit


@dataclass
class Target:
    expr: str
    legend: str = ""
    heatmap: bool = False


@dataclass
class Panel:
    title: str
    description: str
    unit: str
    targets: list[Target]
    kind: str = "timeseries"        # timeseries | heatmap | stat
    width: int = 12
    stacked: bool = False

    def json(self, panel_id: int, x: int, y: int) -> dict:
        panel: dict[str, Any] = {
            "id": panel_id, "type": self.kind, "title": self.title,
            "description": self.description, "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": PANEL_HEIGHT},
            "fieldConfig": {"defaults": {"unit": self.unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + index), "datasource": DATASOURCE,
                         "expr": target.expr, "legendFormat": target.legend or "__auto",
                         "range": True,
                         **({"format": "heatmap"} if target.heatmap else {})}
                        for index, target in enumerate(self.targets)],
        }
        if self.kind == "heatmap":
            panel["options"] = {"calculate": False, "yAxis": {"unit": self.unit},
                                "cellGap": 1, "color": {"scheme": "Oranges", "mode": "scheme"}}
        elif self.kind == "timeseries" and self.stacked:
            panel["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal"},
                                                          "fillOpacity": 20}
        return panel


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    variables: list[dict]
    rows: list[tuple[str, list[Panel]]] = field(default_factory=list)

    def json(self) -> dict:
        panels: list[dict] = []
        next_id, y = 1, 0
        for title, row_panels in self.rows:
            panels.append({"id": next_id, "type": "row", "title": title, "collapsed": False,
                           "gridPos": {"x": 0, "y": y, "w": WIDTH, "h": 1}, "panels": []})
            next_id, y, x = next_id + 1, y + 1, 0
            for panel in row_panels:
                if x + panel.width > WIDTH:
                    x, y = 0, y + PANEL_HEIGHT
                panels.append(panel.json(next_id, x, y))
                next_id, x = next_id + 1, x + panel.width
            y += PANEL_HEIGHT
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": TAGS, "timezone": "browser", "editable": True, "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": self.variables}, "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": TAGS, "asDropdown": True,
                       "title": "ig-metrics"}],
            "panels": panels,
        }


# --- variables --------------------------------------------------------------------
def _datasource_variable() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1}


def _query_variable(name: str, label: str, query: str, all_value: str | None = ".*") -> dict:
    variable = {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
                "query": {"query": query, "refId": name},
                "includeAll": True, "multi": True, "current": {},
                "refresh": 2, "sort": 1, "hide": 0}
    if all_value is not None:
        variable["allValue"] = all_value
    return variable


def agent_variables(gadget: str | None = None) -> list[dict]:
    """datasource, job and node (the scrape's instance: the node's name with
    the PodMonitor deploy writes)."""
    # An agent may run several gadgets: ig_metrics_gadget="tcp,dns,exec".
    runs = f'{GADGET_LABEL}=~"(.+,)?{gadget}(,.+)?"' if gadget else ""
    info = matchers(SERVICE_MATCHER, runs)
    info_in_job = matchers(SERVICE_MATCHER, runs, JOB)
    return [_datasource_variable(),
            _query_variable("job", "Job", f"label_values({TARGET_INFO}{info}, job)", None),
            _query_variable("node", "Node", f"label_values({TARGET_INFO}{info_in_job}, instance)",
                            None)]


def attribute_variables(metrics: list[Metric]) -> tuple[tuple[str, ...], list[dict]]:
    """namespace, pod and command, for the attributes the gadget has; each asked
    of the first metric that carries it, within the variables before it."""
    names: list[str] = []
    found = []
    for variable, attribute in ATTRIBUTE_VARIABLES.items():
        label = label_name(attribute)
        carrier = next((metric for metric in metrics if label in metric.labels), None)
        if carrier is None:
            continue
        within = matchers(JOB, NODE, *variable_matchers(carrier, tuple(names)))
        label_text = {"namespace": "Namespace", "pod": "Pod", "command": "Command"}[variable]
        found.append(_query_variable(variable, label_text,
                                     f"label_values({carrier.prometheus}{within}, {label})"))
        names.append(variable)
    return tuple(names), found


# --- a gadget's dashboard --------------------------------------------------------------
def group_label(metric: Metric) -> str:
    return next((label_name(name) for name in GROUP_PREFERENCE
                 if label_name(name) in metric.labels), "instance")


def metric_panels(metric: Metric, variables: tuple[str, ...]) -> list[Panel]:
    selector = matchers(JOB, NODE, *variable_matchers(metric, variables))
    group = group_label(metric)
    if metric.kind == COUNTER:
        return [Panel(f"{metric.name} per second by {group}", metric.description,
                      grafana_unit(metric.unit, True),
                      [Target(rate(metric, selector, (group,)), f"{{{{{group}}}}}")],
                      stacked=True),
                Panel(f"{metric.name} per second by node", metric.description,
                      grafana_unit(metric.unit, True),
                      [Target(rate(metric, selector, ("instance",)), "{{instance}}")])]
    if metric.kind == GAUGE:
        return [Panel(f"{metric.name} by {group}", metric.description,
                      grafana_unit(metric.unit, False),
                      [Target(f"sum{by((group,))} ({metric.prometheus}{selector})",
                              f"{{{{{group}}}}}")])]
    unit = grafana_unit(metric.unit, False)
    quantiles = [Target(classic_quantile(metric, q, selector), f"p{q * 100:g}")
                 for q in QUANTILES]
    heatmap = [Target(classic_heatmap(metric, selector), "{{le}}", heatmap=True)]
    by_group = [Target(classic_quantile(metric, 0.99, selector, (group,)), f"{{{{{group}}}}}")]
    described = metric.description
    if metric.native:
        quantiles += [Target(native_quantile(metric, q, selector), f"p{q * 100:g} (native)")
                      for q in QUANTILES]
        heatmap.append(Target(native_heatmap(metric, selector), "native", heatmap=True))
        by_group.append(Target(native_quantile(metric, 0.99, selector, (group,)),
                               f"{{{{{group}}}}} (native)"))
        described += (" Classic buckets and, where Prometheus scrapes native histograms, "
                      "the native histogram.")
    return [Panel(f"{metric.name} quantiles", described, unit, quantiles),
            Panel(f"{metric.name} distribution", metric.description, unit, heatmap,
                  kind="heatmap"),
            Panel(f"{metric.name} p99 by {group}", metric.description, unit, by_group,
                  width=24)]


def gadget_dashboard(spec: GadgetSpec) -> Dashboard:
    metrics = rules.gadget_metrics(spec)
    variables, attribute_vars = attribute_variables(metrics)
    dashboard = Dashboard(f"ig-metrics-{spec.name}", f"ig-metrics / {spec.name}",
                          spec.summary, agent_variables(spec.name) + attribute_vars)
    for metric in metrics:
        dashboard.rows.append((f"{metric.name} ({metric.prometheus})",
                               metric_panels(metric, variables)))
    kernel = matchers(JOB, NODE)
    dashboard.rows.append(("What the gadget could not count", [
        Panel("Kernel events dropped per second (map full)", rules.KERNEL_DROPPED.description,
              "cps", [Target(rate(rules.KERNEL_DROPPED, kernel, ("bpf_map_name",)),
                             "{{bpf_map_name}}")]),
        Panel("BPF map fill", rules.MAP_FILL.description, "percentunit",
              [Target(f"max by (bpf_map_name) ({rules.MAP_FILL.prometheus}{kernel})",
                      "{{bpf_map_name}}")])]))
    return dashboard


# --- overview --------------------------------------------------------------------------
def overview_dashboard(specs: list[GadgetSpec]) -> Dashboard:
    dashboard = Dashboard("ig-metrics-overview", "ig-metrics / overview",
                          "Every gadget per node, from the recording rules (5m rates).",
                          agent_variables())
    agents = matchers(SERVICE_MATCHER, JOB, NODE)
    dashboard.rows.append(("Agents", [
        Panel("Agents up", "Scrape targets of ig-metrics that answer.", "short",
              [Target(f"sum(up{matchers(JOB_MATCHER, JOB, NODE)})", "up")], kind="stat",
              width=6),
        Panel("Agents by gadget", "Running agents, by the gadget they run.", "short",
              [Target(f"count by ({GADGET_LABEL}) ({TARGET_INFO}{agents})",
                      f"{{{{{GADGET_LABEL}}}}}")], kind="stat", width=6),
        Panel("Series per node", rules.SERIES.description, "short",
              [Target(f"sum by (instance) ({rules.SERIES.prometheus}{matchers(JOB, NODE)})",
                      "{{instance}}")]),
    ]))
    recorded = matchers(JOB, NODE)
    for spec in specs:
        panels = []
        for rule in rules.recorded(spec):
            metric = rule.source
            if metric.kind == COUNTER:
                panels.append(Panel(f"{spec.name}: {metric.name} per second by node",
                                    metric.description, grafana_unit(metric.unit, True),
                                    [Target(f"sum by (instance) ({recorded_rate_name(metric)}"
                                            f"{recorded})", "{{instance}}")], width=8))
            else:
                targets = [Target(f"histogram_quantile(0.99, sum by (instance, le) "
                                  f"({recorded_bucket_rate_name(metric)}{recorded}))",
                                  "{{instance}}")]
                if metric.native:
                    targets.append(Target(native_quantile(metric, 0.99, recorded, ("instance",)),
                                          "{{instance}} (native)"))
                panels.append(Panel(f"{spec.name}: {metric.name} p99 by node",
                                    metric.description, grafana_unit(metric.unit, False),
                                    targets, width=8))
        dashboard.rows.append((f"{spec.name}: {spec.summary}", panels))
    return dashboard


# --- health ----------------------------------------------------------------------------
def health_dashboard() -> Dashboard:
    own = matchers(JOB, NODE)
    # Agents of several gadgets on one node differ by job (one PodMonitor each).
    exporter = ("job", "instance", "otel_component_name")
    legend = "{{instance}} {{job}} {{otel_component_name}}"
    attempts, failures, dropped = rules.ATTEMPTS, rules.FAILURES, rules.DROPPED_POINTS
    duration = rules.SELF[telemetry.DURATION.name]
    queue_size = rules.SELF[telemetry.QUEUE_SIZE.name]
    interval = rules.SELF[telemetry.INTERVAL.name]
    points = rules.SELF[telemetry.POINTS.name]
    runs = rules.SELF[selfmetrics.RUNS.name]
    run_time = rules.SELF[selfmetrics.RUN_TIME.name]
    dashboard = Dashboard("ig-metrics-health", "ig-metrics health",
                          "Is ig-metrics itself well: its exporters, queues, drops, series "
                          "folded into overflow, BPF maps, sampler and kernel drops.",
                          agent_variables())
    health_label = rules.HEALTH_LABEL
    dashboard.rows.append(("Exporters", [
        # One series per state, 1 for the current one: summed, not counted.
        Panel("Exporters by state", rules.HEALTH.description, "short",
              [Target(f"sum by ({health_label}) ({rules.HEALTH.prometheus}{own})",
                      f"{{{{{health_label}}}}}")], stacked=True),
        Panel("Exporter states", rules.HEALTH.description, "short",
              [Target(f"max by (job, instance, otel_component_name, {health_label}) "
                      f"({rules.HEALTH.prometheus}{own}) == 1",
                      f"{legend} {{{{{health_label}}}}}")]),
        Panel("Export attempts per second by outcome", attempts.description, "cps",
              [Target(rate(attempts, own, (*exporter, "outcome")),
                      f"{legend} {{{{outcome}}}}")]),
        Panel("Export failures per second by error", failures.description, "cps",
              [Target(rate(failures, own, (*exporter, "error_type")),
                      f"{legend} {{{{error_type}}}}")]),
        # Its buckets are fixed bounds, not log2 slots: classic on every scrape.
        Panel("Export duration p50 / p99", duration.description, "s",
              [Target(classic_quantile(duration, 0.5, own, exporter), f"p50 {legend}"),
               Target(classic_quantile(duration, 0.99, own, exporter), f"p99 {legend}")]),
        Panel("Export duration distribution", duration.description, "s",
              [Target(classic_heatmap(duration, own), "{{le}}", heatmap=True)], kind="heatmap"),
        Panel("Points delivered per second", points.description, "cps",
              [Target(rate(points, own, exporter), legend)]),
        Panel("Export interval", interval.description, "s",
              [Target(f"max by (job, instance, otel_component_name) ({interval.prometheus}{own})",
                      legend)]),
    ]))
    dashboard.rows.append(("Queues and drops", [
        Panel("Queue depth", rules.QUEUE_DEPTH.description, "short",
              [Target(f"max by (job, instance, otel_component_name) "
                      f"({rules.QUEUE_DEPTH.prometheus}{own})", legend)]),
        Panel("Queue size", queue_size.description, "bytes",
              [Target(f"max by (job, instance, otel_component_name) ({queue_size.prometheus}{own})",
                      legend)]),
        Panel("Points dropped per second by reason", dropped.description, "cps",
              [Target(rate(dropped, matchers(JOB, NODE, 'reason!="overflow"'),
                           (*exporter, "reason")), f"{legend} {{{{reason}}}}")]),
        Panel("Points folded into overflow per second", dropped.description, "cps",
              [Target(rate(dropped, matchers(JOB, NODE, 'reason="overflow"'), exporter),
                      legend),
               Target(f"count by (job, instance) ({{{rules.OVERFLOW_LABEL}=\"true\", "
                      f"{JOB}, {NODE}}})", "{{instance}} {{job}} overflow series")]),
    ]))
    kernel_dropped, missed = rules.KERNEL_DROPPED, rules.KERNEL_MISSED
    dashboard.rows.append(("Kernel side", [
        Panel("BPF map fill", rules.MAP_FILL.description, "percentunit",
              [Target(f"max by (job, instance, bpf_map_name) ({rules.MAP_FILL.prometheus}{own})",
                      "{{instance}} {{job}} {{bpf_map_name}}")]),
        Panel("Kernel events dropped per second (map full)", kernel_dropped.description,
              "cps", [Target(rate(kernel_dropped, own, ("job", "instance", "bpf_map_name")),
                             "{{instance}} {{job}} {{bpf_map_name}}")]),
        Panel("BPF runs missed per second", missed.description, "cps",
              [Target(rate(missed, own, ("job", "instance", "bpf_program_name")),
                      "{{instance}} {{job}} {{bpf_program_name}}")]),
        Panel("BPF time per run", run_time.description, "s",
              [Target(f"{rate(run_time, own, ('job', 'instance', 'bpf_program_name'))}\n/ "
                      f"{rate(runs, own, ('job', 'instance', 'bpf_program_name'))}",
                      "{{instance}} {{job}} {{bpf_program_name}}")]),
    ]))
    dashboard.rows.append(("Sampler", [
        Panel("Sampler reading time and interval", rules.TICK.description, "s",
              [Target(f"max by (job, instance) ({rules.TICK.prometheus}{own})",
                      "{{instance}} {{job}} reading"),
               Target(f"max by (job, instance) ({rules.SAMPLER_INTERVAL.prometheus}{own})",
                      "{{instance}} {{job}} interval")]),
        Panel("Series", rules.SERIES.description, "short",
              [Target(f"sum by (job, instance) ({rules.SERIES.prometheus}{own})",
                      "{{instance}}")]),
    ]))
    return dashboard
