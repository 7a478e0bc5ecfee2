"""The promtool unit tests of every alert of the mixin, as data: for each alert,
input series that must make it fire (with the labels and value it fires with)
and input series, close to those, that must leave it silent. test_mixin.py
writes them as a `promtool test rules` file and runs the real promtool."""

from __future__ import annotations

from dataclasses import dataclass

AGENT = {"job": "ig-metrics", "instance": "node-1"}
EXPORTER = {**AGENT, "otel_component_name": "central", "otel_component_type": "otlp-grpc"}


def series(name: str, labels: dict[str, str], values: str) -> dict:
    text = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def health(*timeline: tuple[str, int]) -> list[dict]:
    """EXPORTER's health gauge as the agent exports it, one series per state (1
    for the current one, 0 for the others), from (state, minutes in it) steps."""
    steps = [state for state, minutes in timeline for _ in range(minutes)]
    return [series(HEALTH, {**EXPORTER, "ig_metrics_exporter_health": state},
                   " ".join("1" if now == state else "0" for now in steps))
            for state in HEALTH_STATES]


@dataclass(frozen=True)
class Case:
    alert: str
    eval_time: str
    fires: list[dict]                  # input series that make it fire
    labels: dict[str, str]             # the labels it fires with (severity aside)
    value: str                         # {{ $value }} as the annotations render it
    silent: list[dict]                 # input series that must not make it fire


ATTEMPTS = "ig_metrics_export_attempts_total"
DROPPED = "ig_metrics_export_points_dropped_total"
HEALTH = "ig_metrics_exporter_health"
HEALTH_STATES = ("starting", "healthy", "degraded", "failing", "recovering", "stopped")
# One attempt every 2 minutes (retry.max: 2m): fewer than 3 in any 5 minutes.
SLOW_FAILURES = "0 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8 8 9 9 10 10"

CASES = [
    # A new exporter whose first attempts fail, and that never succeeds: starting,
    # degraded after its first failure, failing after its third.
    Case("IgMetricsExporterFailing", "10m",
         fires=health(("starting", 1), ("degraded", 2), ("failing", 18)),
         labels=EXPORTER, value="",
         # The same start, but it delivers after 4 minutes of failing.
         silent=health(("starting", 1), ("degraded", 2), ("failing", 4), ("recovering", 1),
                       ("healthy", 13))),
    # An exporter that fails for ever with a long backoff: its state says so,
    # whatever the count of attempts.
    Case("IgMetricsExporterFailing", "15m",
         fires=[*health(("healthy", 5), ("failing", 16)),
                series(ATTEMPTS, {**EXPORTER, "outcome": "failure"}, SLOW_FAILURES),
                series(ATTEMPTS, {**EXPORTER, "outcome": "success"}, "5x20")],
         labels=EXPORTER, value="",
         # Failed attempts, but successes between them: degraded, not failing.
         silent=[*health(("healthy", 5), ("degraded", 16)),
                 series(ATTEMPTS, {**EXPORTER, "outcome": "failure"}, SLOW_FAILURES),
                 series(ATTEMPTS, {**EXPORTER, "outcome": "success"}, "5+1x20")]),
    Case("IgMetricsExporterDroppingPoints", "10m",
         fires=[series(DROPPED, {**EXPORTER, "reason": "queue_full"}, "0+10x20")],
         labels={**EXPORTER, "reason": "queue_full"}, value="50",
         # Points folded into overflow are not lost; queue drops that stopped.
         silent=[series(DROPPED, {**EXPORTER, "reason": "overflow"}, "0+10x20"),
                 series(DROPPED, {**EXPORTER, "reason": "queue_full"}, "30x20")]),
    # One batch of 500 points dropped once: seen, because the series was there
    # at 0 before it (the agent exports every reason from its start).
    Case("IgMetricsExporterDroppingPoints", "5m",
         fires=[series(DROPPED, {**EXPORTER, "reason": "rejected"}, "0 0 0 500x20")],
         labels={**EXPORTER, "reason": "rejected"}, value="500",
         # The same drop of a series born holding its count adds nothing to
         # increase(): why every reason is exported from 0. Overflow is no loss.
         silent=[series(DROPPED, {**EXPORTER, "reason": "rejected"}, "_ _ _ 500x20"),
                 series(DROPPED, {**EXPORTER, "reason": "overflow"}, "0 0 0 500x20")]),
    Case("IgMetricsSeriesOverflow", "15m",
         fires=[series(DROPPED, {**EXPORTER, "reason": "overflow"}, "0+5x30")],
         labels=EXPORTER, value="",
         silent=[series(DROPPED, {**EXPORTER, "reason": "overflow"}, "40x30"),
                 series(DROPPED, {**EXPORTER, "reason": "queue_full"}, "0+5x30")]),
    Case("IgMetricsSeriesOverflow", "15m",
         fires=[series("tcp_sent_bytes_total", {**AGENT, "otel_metric_overflow": "true"},
                       "0+100x30")],
         labels=AGENT, value="",
         silent=[series("tcp_sent_bytes_total", {**AGENT, "process_command": "curl"},
                        "0+100x30")]),
    Case("IgMetricsBpfMapNearlyFull", "20m",
         fires=[series("ig_metrics_bpf_map_fill_ratio", {**AGENT, "bpf_map_name": "flows"},
                       "0.95x30")],
         labels={**AGENT, "bpf_map_name": "flows"}, value="95%",
         silent=[series("ig_metrics_bpf_map_fill_ratio", {**AGENT, "bpf_map_name": "flows"},
                        "0.5x30")]),
    Case("IgMetricsKernelEventsDropped", "10m",
         fires=[series("ig_metrics_kernel_dropped_events_total",
                       {**AGENT, "bpf_map_name": "sockets"}, "0+2x20")],
         labels={**AGENT, "bpf_map_name": "sockets"}, value="10",
         silent=[series("ig_metrics_kernel_dropped_events_total",
                        {**AGENT, "bpf_map_name": "sockets"}, "0x20")]),
    Case("IgMetricsBpfRunsMissed", "10m",
         fires=[series("ig_metrics_kernel_missed_events_total",
                       {**AGENT, "bpf_program_name": "on_send"}, "0+1x20")],
         labels={**AGENT, "bpf_program_name": "on_send"}, value="5",
         silent=[series("ig_metrics_kernel_missed_events_total",
                        {**AGENT, "bpf_program_name": "on_send"}, "12x20")]),
    Case("IgMetricsSamplerSlow", "10m",
         fires=[series("ig_metrics_sampler_tick_duration_seconds", AGENT, "0.8x20"),
                series("ig_metrics_sampler_interval_seconds", AGENT, "1x20")],
         labels=AGENT, value="",
         # Before its first reading the interval is 0: not a slow sampler.
         silent=[series("ig_metrics_sampler_tick_duration_seconds", AGENT, "0.3x20"),
                 series("ig_metrics_sampler_interval_seconds", AGENT, "1x20"),
                 series("ig_metrics_sampler_tick_duration_seconds",
                        {**AGENT, "instance": "node-2"}, "0.8x20"),
                 series("ig_metrics_sampler_interval_seconds",
                        {**AGENT, "instance": "node-2"}, "0x20")]),
    Case("IgMetricsAgentDown", "10m",
         fires=[series("up", AGENT, "0x20")], labels=AGENT, value="",
         silent=[series("up", AGENT, "1x20"),
                 series("up", {"job": "node-exporter", "instance": "node-1"}, "0x20")]),
    Case("IgMetricsAgentAbsent", "20m",
         fires=[series("up", {"job": "node-exporter", "instance": "node-1"}, "1x30")],
         labels={}, value="",
         silent=[series("up", {"job": "ig-metrics/ig-metrics-tcp", "instance": "node-1"},
                        "1x30")]),
]
