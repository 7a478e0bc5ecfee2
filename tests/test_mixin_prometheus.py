"""The mixin's PromQL against the real Prometheus 2.42: every expression of
every dashboard and rule is accepted, and, after a real run of the tcp gadget
with a known workload and Prometheus scraping it (the recording and alerting
rules loaded), every panel the run feeds returns data. The exceptions are
listed in EXPECTED_EMPTY with why (docs/monitoring.md lists them too). The
native-histogram targets are asked of a second Prometheus, started with
native histograms, that scrapes the same endpoint.

With IG_METRICS_MIXIN_CAPTURE=FILE the real run's query_range results are
written to FILE, from which scripts/render-monitoring.py draws the pictures
of docs/monitoring.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ig_metrics.app import mixin
from ig_metrics.gadgets import builtin_specs, resolve
from tests.receivers import OtlpHttpReceiver, PrometheusServer, free_port, iter_points
from tests.tcp_workload import EchoCountServer, run_client

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "monitoring"
RULE_FILES = (COMMITTED / mixin.ALERTS_FILE, COMMITTED / mixin.RECORDING_FILE)
IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
# What the dashboards' variables and Grafana's intervals stand for here: every
# value ("All"), and a rate window of several 1 s scrapes.
SUBSTITUTIONS = {"$__rate_interval": "10s", "$job": ".*", "$node": ".*", "$namespace": ".*",
                 "$pod": ".*", "$command": ".*"}
# Queries that a tcp run on loopback may leave empty, and why (docs/monitoring.md
# says the same). Any other empty query fails the test.
EXPECTED_EMPTY = {
    "tcp_retransmits": "loopback loses no packet, so nothing is retransmitted and the "
                       "series exist only where a flow's other counts bring a zero "
                       "(test_tcp_gadget counts retransmits under packet loss)",
}
# Variables with no value on this machine: no pod runs here.
NO_VALUES_HERE = {"variable namespace": "no Kubernetes here: no process is in a pod",
                  "variable pod": "no Kubernetes here: no process is in a pod"}
NATIVE_FLAGS = ("--enable-feature=native-histograms",)


def is_native(legend: str) -> bool:
    """A native-histogram target (dashboards.py marks their legends so)."""
    return legend == "native" or legend.endswith("(native)")


def expected_empty(expr: str) -> bool:
    return any(name in expr for name in EXPECTED_EMPTY)


def substituted(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    if expr.startswith("label_values("):
        # A variable's query: the series it takes the label's values from.
        expr = expr.removeprefix("label_values(").rsplit(",", 1)[0]
    return expr


def every_dashboard_query(boards: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(dashboard, panel title, legend, expression) of every target and variable."""
    found = []
    for uid, board in boards.items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((uid, panel["title"], target["legendFormat"], target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                found.append((uid, f"variable {variable['name']}", "",
                              variable["query"]["query"]))
    return found


def rule_expressions() -> list[str]:
    import yaml
    return [rule["expr"] for path in RULE_FILES
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_real_prometheus_accepts_every_expression(tmp_path: Path) -> None:
    """Prometheus refuses to start on a rule it cannot parse, and answers 400
    to a query it cannot parse: every rule and every panel of every gadget."""
    boards = mixin.dashboards(builtin_specs())
    with PrometheusServer([f"127.0.0.1:{free_port()}"], tmp_path / "prometheus",
                          rule_files=RULE_FILES) as prometheus:
        groups = prometheus.api("rules")["groups"]
        assert sum(len(group["rules"]) for group in groups) == len(rule_expressions())
        assert all(rule["health"] != "err" for group in groups for rule in group["rules"])
        refused = []
        for uid, title, _legend, expr in every_dashboard_query(boards):
            try:
                prometheus.api("query", query=substituted(expr))
            except RuntimeError as error:
                refused.append(f"{uid} / {title}: {error}")
        for expr in rule_expressions():
            try:
                prometheus.api("query", query=expr)
            except RuntimeError as error:
                refused.append(f"rule: {error}")
        assert refused == []


def _profile(directory: Path, prom_port: int, dead_port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    # The Prometheus endpoint folds tcp.connections.closed's series beyond 3 into
    # overflow; the
    # OTLP exporter sends to a port nobody listens on: failures, a full queue.
    (directory / "mixin.yaml").write_text(f"""
exporters:
  scrape-me:
    type: prometheus
    listen: "127.0.0.1:{prom_port}"
    limits: {{max_series_by_metric: {{tcp.connections.closed: 3}}}}
  nowhere:
    type: otlp-http
    endpoint: "http://127.0.0.1:{dead_port}"
    temporality: delta
    timeout: 1s
    queue: {{max_batches: 2}}
    retry: {{initial: 1s, max: 1s}}
profiles:
  mixin:
    exporters: [scrape-me, nowhere]
    interval: 1s
""")
    return directory


def _wait_for_scrape(prometheus: PrometheusServer, run: subprocess.Popen) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise AssertionError(f"ig-metrics exited early: {run.communicate()}")
        if prometheus.query('up{job="ig-metrics"} == 1'):
            return
        time.sleep(0.25)
    raise AssertionError(f"Prometheus never scraped ig-metrics: {prometheus.output()}")


@pytest.mark.bpf
def test_every_panel_returns_data_after_a_real_tcp_run(tmp_path: Path) -> None:
    spec = resolve("tcp")
    boards = mixin.dashboards([spec])
    prom_port, dead_port = free_port(), free_port()
    profiles = _profile(tmp_path / "profiles", prom_port, dead_port)
    run = subprocess.Popen([IG_METRICS, "run", "--gadget", "tcp", "--profile", "mixin",
                            "--profiles-dir", str(profiles), "--no-tui", "--duration", "120s"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = EchoCountServer(reply_bytes=5_000)
    try:
        # Two Prometheus servers scrape the same endpoint: one without native
        # histograms (text: classic buckets; the rules loaded) and one with them
        # (it asks for the protobuf exposition and keeps whole histograms).
        target = [f"127.0.0.1:{prom_port}"]
        with PrometheusServer(target, tmp_path / "prometheus", rule_files=RULE_FILES
                              ) as prometheus, \
                PrometheusServer(target, tmp_path / "native", flags=NATIVE_FLAGS) as native:
            _wait_for_scrape(prometheus, run)
            _wait_for_scrape(native, run)
            start = time.time()
            # Known traffic: 2 connections of 200 kB out, 5 kB back each, in waves
            # (three; more for the pictures), so that rates see several scrapes.
            waves = 12 if os.environ.get("IG_METRICS_MIXIN_CAPTURE") else 3
            for wave in range(waves):
                run_client("127.0.0.1", server.port, send_bytes=200_000, connections=2,
                           name=f"igm-mixin-{wave % 3}")
                time.sleep(2)
            server.wait_for(2 * waves)
            # What the panels rate is what was sent, exactly.
            sent = 'sum(tcp_sent_bytes_total{process_command=~"igm-mixin-."})'
            assert prometheus.wait_for(f"{sent} == {400_000 * waves}"), prometheus.query(sent)
            # The recording rules evaluate every second: wait for their first values.
            assert prometheus.wait_for("instance:tcp_sent_bytes:rate5m", timeout=20)
            assert prometheus.wait_for('ig_metrics_export_points_dropped_total'
                                       '{reason="queue_full"} > 0', timeout=20)
            # The self-metrics the health dashboard adds: the sampler's interval
            # (the profile's 1 s) and the fill of each hash or slots map.
            interval = prometheus.query("ig_metrics_sampler_interval_seconds")
            assert [float(series["value"][1]) for series in interval] == [1.0]
            fill = {series["metric"]["bpf_map_name"]: float(series["value"][1])
                    for series in prometheus.query("ig_metrics_bpf_map_fill_ratio")}
            assert set(fill) == {source.map for source in spec.sources}
            assert all(0.0 <= value < 0.5 for value in fill.values()), fill
            time.sleep(3)
            end = time.time()
            # The connect durations, a whole native histogram per series there.
            connects = native.query("sum(histogram_count(tcp_connect_duration_seconds))")
            assert connects and float(connects[0]["value"][1]) >= 2 * waves, connects
            assert any(is_native(legend) for *_, legend, _ in every_dashboard_query(boards))
            empty, captured = query_every_panel(boards, {False: prometheus, True: native},
                                                start, end)
            if os.environ.get("IG_METRICS_MIXIN_CAPTURE"):
                Path(os.environ["IG_METRICS_MIXIN_CAPTURE"]).write_text(
                    json.dumps({"start": start, "end": end, "dashboards": captured}))
            assert empty == []
    finally:
        server.close()
        run.terminate()
        run.communicate(timeout=30)


def query_every_panel(boards: dict[str, dict], servers: dict[bool, PrometheusServer],
                      start: float, end: float) -> tuple[list[str], dict]:
    """Every target's query_range over [start, end] and every variable's values,
    each asked of servers[is_native(legend)]: (what came back empty that should
    not have, every target's result by dashboard and panel)."""
    empty: list[str] = []
    captured: dict = {}
    for uid, title, legend, expr in every_dashboard_query(boards):
        prometheus = servers[is_native(legend)]
        if title.startswith("variable "):
            # As Grafana asks: the label's values among the selector's series.
            label = expr.rsplit(",", 1)[1].strip(" )")
            values = prometheus.api(f"label/{label}/values", start=start, end=end,
                                    **{"match[]": substituted(expr)})
            if not values and title not in NO_VALUES_HERE:
                empty.append(f"{uid} / {title}: {expr}")
            continue
        result = prometheus.api("query_range", query=substituted(expr), start=start,
                                end=end, step=1)["result"]
        captured.setdefault(uid, {}).setdefault(title, []).append(
            {"legend": legend, "expr": expr, "result": result})
        if not result and not expected_empty(expr):
            empty.append(f"{uid} / {title} [{legend}]: {expr}")
    return empty, captured


@pytest.mark.bpf
def test_one_batch_dropped_once_fires_its_alert_on_a_real_prometheus(tmp_path: Path) -> None:
    """A real run whose OTLP exporter has one interval refused, once, for its
    data: that batch's points are counted as dropped (rejected), and the real
    Prometheus, scraping the run with the alerting rules loaded, fires
    IgMetricsExporterDroppingPoints, because the counter was there at 0 before
    the drop."""
    prom_port = free_port()
    receiver = OtlpHttpReceiver()
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "alerting.yaml").write_text(f"""
exporters:
  scrape-me:
    type: prometheus
    listen: "127.0.0.1:{prom_port}"
  refuses-once:
    type: otlp-http
    endpoint: "{receiver.url()}"
    temporality: delta
profiles:
  alerting:
    exporters: [scrape-me, refuses-once]
    interval: 1s
""")
    run = subprocess.Popen([IG_METRICS, "run", "--gadget", "tcp", "--profile", "alerting",
                            "--profiles-dir", str(tmp_path / "profiles"), "--no-tui",
                            "--duration", "120s"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mine = 'otel_component_name="refuses-once", reason="rejected"'
    alert = (f'ALERTS{{alertname="IgMetricsExporterDroppingPoints", alertstate="firing", '
             f'{mine}}}')
    try:
        with PrometheusServer([f"127.0.0.1:{prom_port}"], tmp_path / "prometheus",
                              rule_files=RULE_FILES) as prometheus:
            _wait_for_scrape(prometheus, run)
            # Scraped at 0 before anything was dropped, and delivering.
            dropped = f"ig_metrics_export_points_dropped_total{{{mine}}}"
            assert prometheus.wait_for(f"{dropped} == 0"), prometheus.query(dropped)
            receiver.wait_for(1)
            receiver.refuse = 1
            fired = prometheus.wait_for(alert, timeout=30)
            assert fired, (prometheus.query(dropped), prometheus.output())
            (refused,) = receiver.refused
            lost = sum(1 for _ in iter_points([refused]))
            assert [float(series["value"][1]) for series in prometheus.query(dropped)] \
                == [lost]
            assert prometheus.query('ALERTS{alertname="IgMetricsExporterFailing"}') == []
    finally:
        receiver.close()
        run.terminate()
        run.communicate(timeout=30)
    assert fired[0]["metric"]["severity"] == "warning"
