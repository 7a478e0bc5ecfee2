"""The monitoring mixin (`ig-metrics mixin`, monitoring/): the committed files
are what the specs generate today; every dashboard is well-formed and asks only
for metrics its gadget's spec (or the self-metrics) declares; the rules pass
the real `promtool check rules`, and every alert fires and stays silent when
`promtool test rules` says; every alert has its runbook section; deploy's
PodMonitor and PrometheusRule match the prometheus-operator CRDs' schemas."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as operator
from grafana_foundation_sdk.cog import plugins as grafana_plugins
from grafana_foundation_sdk.models import dashboard as grafana_dashboard

from ig_metrics.app import mixin
from ig_metrics.app.mixin import rules
from ig_metrics.app.mixin.queries import TARGET_INFO
from ig_metrics.gadgets import BUILTIN_DIR, builtin_specs
from ig_metrics.gadgets.spec import GadgetSpec, load_spec
from tests.mixin_alert_cases import CASES
from tests.receivers import PROMTOOL, require_tool

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "monitoring"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"
IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
# A name right before a selector's brace or a range's bracket: a metric.
SELECTED = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
ATTRIBUTE_VARIABLES = {"namespace", "pod", "command"}


def declared_names(specs: list[GadgetSpec]) -> set[str]:
    """Every series name the specs and the self-metrics declare, with the
    recording rules made of them and what Prometheus adds (up, target_info)."""
    names = {"up", TARGET_INFO}
    for metric in rules.SELF.values():
        names.update(metric.series_names)
    for spec in specs:
        for metric in rules.gadget_metrics(spec):
            names.update(metric.series_names)
        names.update(rule.record for rule in rules.recorded(spec))
    return names


def panels(board: dict) -> list[dict]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def expressions(board: dict) -> list[str]:
    exprs = [target["expr"] for panel in panels(board) for target in panel["targets"]]
    return exprs + [variable["query"]["query"] for variable in board["templating"]["list"]
                    if variable["type"] == "query"]


def dashboard_problems(board: dict, declared: set[str]) -> list[str]:
    """What is wrong with a dashboard: a panel without the datasource variable
    or a unit, a duplicate id, a query of a metric nobody declares."""
    problems = []
    variables = {variable["name"] for variable in board["templating"]["list"]}
    if not {"datasource", "job", "node"} <= variables:
        problems.append(f"variables {sorted(variables)} lack datasource, job or node")
    ids = [panel["id"] for panel in board["panels"]]
    if len(ids) != len(set(ids)):
        problems.append(f"duplicate panel ids in {ids}")
    for panel in panels(board):
        where = f"panel {panel['id']} ({panel['title']})"
        if panel["datasource"] != {"type": "prometheus", "uid": "${datasource}"}:
            problems.append(f"{where}: datasource {panel['datasource']}")
        if not panel["fieldConfig"]["defaults"].get("unit"):
            problems.append(f"{where}: no unit")
        for target in panel["targets"]:
            if target["datasource"]["uid"] != "${datasource}":
                problems.append(f"{where}: a target's datasource is not $datasource")
    for expr in expressions(board):
        for name in SELECTED.findall(expr):
            if name not in declared:
                problems.append(f"query {expr!r} asks for {name}, which no spec declares")
        for variable in re.findall(r"\$(\w+)", expr):
            if variable not in variables and not variable.startswith("__"):
                problems.append(f"query {expr!r} uses ${variable}, not a variable")
    return problems


@pytest.fixture(scope="module")
def specs() -> list[GadgetSpec]:
    return builtin_specs()


@pytest.fixture(scope="module")
def committed_boards() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text())
            for path in sorted((COMMITTED / mixin.DASHBOARDS_DIR).glob("*.json"))}


def test_committed_mixin_is_current(tmp_path: Path, specs) -> None:
    mixin.write(mixin.build(specs), tmp_path)
    generated = {str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()}
    committed = {str(path.relative_to(COMMITTED)) for path in COMMITTED.rglob("*")
                 if path.is_file()}
    assert committed == generated, "monitoring/ has other files: run ig-metrics mixin -o monitoring"
    stale = [name for name in sorted(generated)
             if (COMMITTED / name).read_text() != (tmp_path / name).read_text()]
    assert not stale, f"monitoring/{', '.join(stale)} stale: run ig-metrics mixin -o monitoring"


def test_every_committed_dashboard_is_well_formed(committed_boards, specs) -> None:
    assert set(committed_boards) == ({f"ig-metrics-{spec.name}" for spec in specs}
                                     | {"ig-metrics-overview", "ig-metrics-health"})
    declared = declared_names(specs)
    for uid, board in committed_boards.items():
        assert board["uid"] == uid
        assert dashboard_problems(board, declared) == [], uid


def _dropped_keys(written, parsed, path: str = "") -> list[str]:
    """Keys of `written` that a round trip through the schema's models lost."""
    if isinstance(written, dict) and isinstance(parsed, dict):
        return [lost for key, value in written.items()
                for lost in ([f"{path}/{key}"] if key not in parsed
                             else _dropped_keys(value, parsed[key], f"{path}/{key}"))]
    if isinstance(written, list) and isinstance(parsed, list):
        return [lost for index, (value, back) in enumerate(zip(written, parsed))
                for lost in _dropped_keys(value, back, f"{path}[{index}]")]
    return []


def test_every_dashboard_key_is_in_grafanas_schema(committed_boards) -> None:
    """Read through the models generated from Grafana's dashboard schema (with
    the panel and Prometheus query plugins), a key they do not know is dropped:
    a misspelt or invented key would show here. (The models do not check values.)"""
    grafana_plugins.register_default_plugins()
    for uid, board in committed_boards.items():
        model = grafana_dashboard.Dashboard.from_json(board)
        parsed = json.loads(json.dumps(model.to_json(), default=lambda value: value.to_json()))
        assert _dropped_keys(board, parsed) == [], uid
    misspelt = {**committed_boards["ig-metrics-tcp"], "templatng": {}}
    model = grafana_dashboard.Dashboard.from_json(misspelt)
    parsed = json.loads(json.dumps(model.to_json(), default=lambda value: value.to_json()))
    assert _dropped_keys(misspelt, parsed) == ["/templatng"]


def test_a_gadget_dashboard_covers_every_metric_of_its_spec(committed_boards, specs) -> None:
    """Counters as rates, histograms as classic and native quantiles and heatmaps,
    the attribute variables the gadget has; units from the metric units."""
    for spec in specs:
        board = committed_boards[f"ig-metrics-{spec.name}"]
        exprs = [target["expr"] for panel in panels(board) for target in panel["targets"]]
        for metric in rules.gadget_metrics(spec):
            mine = [expr for expr in exprs if metric.prometheus in expr]
            if metric.kind == "counter":
                assert any(f"rate({metric.prometheus}{{" in expr for expr in mine), metric.name
            if metric.kind == "histogram":
                assert any(f"rate({metric.bucket}{{" in expr and "histogram_quantile" in expr
                           for expr in mine), metric.name
                assert metric.native, metric.name       # the kernel's log2 slots
                assert any(f"rate({metric.prometheus}{{" in expr and "histogram_quantile" in expr
                           for expr in mine), f"{metric.name}: no native quantile"
                assert any(panel["type"] == "heatmap" and metric.bucket in json.dumps(panel)
                           for panel in panels(board)), metric.name
        variables = {variable["name"] for variable in board["templating"]["list"]}
        labels = {label for metric in rules.gadget_metrics(spec) for label in metric.labels}
        expected = {name for name, label in (("namespace", "k8s_namespace_name"),
                                             ("pod", "k8s_pod_name"),
                                             ("command", "process_command")) if label in labels}
        assert variables & ATTRIBUTE_VARIABLES == expected, spec.name
    tcp = committed_boards["ig-metrics-tcp"]
    units = {panel["title"]: panel["fieldConfig"]["defaults"]["unit"] for panel in panels(tcp)}
    assert units["tcp.sent per second by process_command"] == "Bps"
    assert units["tcp.connections.opened per second by process_command"] == "cps"
    assert units["tcp.connect.duration quantiles"] == "s"


def test_native_queries_only_for_histograms_that_can_be_native(committed_boards,
                                                               specs) -> None:
    """The export duration's fixed buckets stay classic on every scrape
    (exporters/encoding/log2native.py): a native query of it could never answer, so the
    health dashboard has none; every native query reads a log2 histogram."""
    native_names = {metric.prometheus for spec in specs
                    for metric in rules.gadget_metrics(spec) if metric.native}
    duration = rules.SELF["ig_metrics.export.duration"]
    assert not duration.native
    health = committed_boards["ig-metrics-health"]
    assert duration.bucket in json.dumps(health)
    assert not any("native" in target["legendFormat"]
                   for panel in panels(health) for target in panel["targets"])
    for uid, board in committed_boards.items():
        for panel in panels(board):
            for target in panel["targets"]:
                if "native" in target["legendFormat"]:
                    assert any(f"({name}{{" in target["expr"] for name in native_names), \
                        (uid, panel["title"], target["expr"])


def test_a_renamed_metric_makes_the_committed_dashboard_fail(tmp_path: Path,
                                                               committed_boards) -> None:
    """What the staleness check above stands on: a spec whose metric was renamed
    no longer declares what the committed dashboard asks for."""
    gadget = tmp_path / "tcp"
    shutil.copytree(BUILTIN_DIR / "tcp", gadget)
    spec_file = gadget / "gadget.yaml"
    spec_file.write_text(re.sub(r"\btcp\.sent\b", "tcp.transmitted", spec_file.read_text()))
    renamed = load_spec(spec_file)
    problems = dashboard_problems(committed_boards["ig-metrics-tcp"], declared_names([renamed]))
    assert problems and all("tcp_sent_bytes_total" in problem for problem in problems)
    regenerated = mixin.build([renamed])["dashboards/ig-metrics-tcp.json"]
    assert "tcp_transmitted_bytes_total" in regenerated
    assert regenerated != (COMMITTED / "dashboards" / "ig-metrics-tcp.json").read_text()


def test_mixin_command_writes_a_user_gadgets_mixin(tmp_path: Path) -> None:
    gadget = tmp_path / "mytcp"
    shutil.copytree(BUILTIN_DIR / "tcp", gadget)
    spec_file = gadget / "gadget.yaml"
    metrics = "|".join(re.escape(metric.name) for metric in load_spec(spec_file).metrics)
    text = re.sub(rf"\b({metrics})\b", r"my\1", spec_file.read_text())
    spec_file.write_text(text.replace("name: tcp\n", "name: mytcp\n"))
    out = tmp_path / "out"
    done = subprocess.run([IG_METRICS, "mixin", "--gadget", str(gadget), "--output", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    board = json.loads((out / "dashboards" / "ig-metrics-mytcp.json").read_text())
    assert dashboard_problems(board, declared_names([load_spec(spec_file)])) == []
    assert "mytcp_sent_bytes_total" in json.dumps(board)
    recording = yaml.safe_load((out / "prometheus" / "recording.yaml").read_text())
    assert [group["name"] for group in recording["groups"]] == ["ig-metrics.mytcp.recording"]
    assert sorted(path.name for path in (out / "dashboards").iterdir()) == [
        "ig-metrics-health.json", "ig-metrics-mytcp.json", "ig-metrics-overview.json"]


def test_mixin_command_refuses_an_unknown_gadget(tmp_path: Path) -> None:
    done = subprocess.run([IG_METRICS, "mixin", "--gadget", "tpc", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown gadget 'tpc'" in done.stderr and "tcp" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_promtool_checks_the_committed_rules() -> None:
    require_tool(PROMTOOL, "promtool (Debian package `prometheus`)")
    files = [COMMITTED / mixin.ALERTS_FILE, COMMITTED / mixin.RECORDING_FILE]
    done = subprocess.run([PROMTOOL, "check", "rules", *map(str, files)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def _rendered(template: str, labels: dict[str, str], value: str) -> str:
    """An annotation as Prometheus renders it, for the templates the rules use."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda match: labels[match[1]], template)
    return re.sub(r"\{\{ \$value( \| humanizePercentage)? \}\}", value, text)


def promtool_tests() -> dict:
    alerts = {alert.name: alert for alert in rules.ALERTS}
    tests = []
    for case in CASES:
        rule = alerts[case.alert].rule(rules.DEFAULT_RUNBOOK_BASE)
        expected = {"exp_labels": {**case.labels, "severity": rule["labels"]["severity"]},
                    "exp_annotations": {key: _rendered(text, case.labels, case.value)
                                        for key, text in rule["annotations"].items()}}
        for inputs, exp_alerts in ((case.fires, [expected]), (case.silent, [])):
            tests.append({"interval": "1m", "input_series": inputs,
                          "alert_rule_test": [{"eval_time": case.eval_time,
                                               "alertname": case.alert,
                                               "exp_alerts": exp_alerts}]})
    return {"rule_files": [str(COMMITTED / mixin.ALERTS_FILE)], "evaluation_interval": "1m",
            "tests": tests}


def test_every_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    require_tool(PROMTOOL, "promtool (Debian package `prometheus`)")
    assert {case.alert for case in CASES} == {alert.name for alert in rules.ALERTS}
    test_file = tmp_path / "alerts_test.yaml"
    test_file.write_text(yaml.safe_dump(promtool_tests(), sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", str(test_file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_test_fails_an_alert_that_does_not_fire(tmp_path: Path) -> None:
    """The unit tests above can fail: an alert expected where it cannot fire."""
    require_tool(PROMTOOL, "promtool (Debian package `prometheus`)")
    tests = promtool_tests()
    tests["tests"] = [tests["tests"][1]]          # the first alert's silent case...
    tests["tests"][0]["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {}}]
    test_file = tmp_path / "alerts_test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", str(test_file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr


def test_every_alert_has_a_runbook_section_and_says_what_to_do() -> None:
    anchors = {_anchor(line.lstrip("#").strip())
               for line in MONITORING_DOC.read_text().splitlines() if line.startswith("### ")}
    for alert in rules.ALERTS:
        rule = alert.rule("https://docs.example/monitoring.md")
        assert rule["annotations"]["runbook_url"].endswith(f"#{alert.runbook}")
        assert alert.runbook in anchors, f"docs/monitoring.md has no section for {alert.name}"
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80


def _anchor(heading: str) -> str:
    """The anchor GitHub makes of a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def deploy(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([IG_METRICS, "deploy", "--gadget", "tcp", *flags],
                          capture_output=True, text=True, timeout=60)


def test_deploy_emits_monitoring_objects_valid_against_their_schemas() -> None:
    done = deploy("--monitoring", "--prometheus-operator", "--runbook-base",
                  "https://wiki.example/monitoring.md")
    assert done.returncode == 0, done.stderr
    documents = {(doc["kind"], doc["metadata"]["name"]): doc
                 for doc in yaml.safe_load_all(done.stdout)}
    config_map = documents[("ConfigMap", "ig-metrics-monitoring")]
    kubernetes_validate.validate(config_map, "1.32", strict=True)
    # `kubectl apply` keeps the whole object in an annotation, which may hold 256 KiB.
    assert len(json.dumps(config_map)) < 256 * 1024
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["ig-metrics-tcp.json"])["uid"] == "ig-metrics-tcp"
    assert config_map["data"]["alerts.yaml"] == mixin.build(
        builtin_specs(), "https://wiki.example/monitoring.md")[mixin.ALERTS_FILE]
    # Generated from the CRDs' OpenAPI schemas: types, patterns (durations),
    # required fields; a field the schema lacks is dropped, so the round trip
    # would differ.
    for kind, model in (("PodMonitor", operator.PodMonitor),
                        ("PrometheusRule", operator.PrometheusRule)):
        document = next(doc for (found, _), doc in documents.items() if found == kind)
        parsed = model.model_validate(document)
        assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == document
    pod_monitor = documents[("PodMonitor", "ig-metrics-tcp")]
    daemon_set = documents[("DaemonSet", "ig-metrics-tcp")]
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= \
        daemon_set["spec"]["template"]["metadata"]["labels"].items()
    ports = {port["name"] for port in
             daemon_set["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {endpoint["port"] for endpoint in pod_monitor["spec"]["podMetricsEndpoints"]} <= ports
    rule = documents[("PrometheusRule", "ig-metrics")]
    assert rule["spec"]["groups"] == mixin.rule_groups(builtin_specs(),
                                                       "https://wiki.example/monitoring.md")


def test_the_schema_check_catches_a_wrong_field() -> None:
    document = yaml.safe_load(deploy("--prometheus-operator").stdout.split("---\n")[-1])
    assert document["kind"] == "PrometheusRule"
    document["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    with pytest.raises(ValueError, match="pattern"):
        operator.PrometheusRule.model_validate(document)
    document["spec"]["groups"][0]["rules"][0]["for"] = "5m"
    document["spec"]["groups"][0]["rules"][0]["alerts"] = "typo"
    parsed = operator.PrometheusRule.model_validate(document)
    assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") != document


def test_deploy_without_a_prometheus_exporter_cannot_make_a_pod_monitor(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("exporters:\n  out: {type: console}\n"
                                     "profiles:\n  quiet: {exporters: [out]}\n")
    done = deploy("--profile", "quiet", "--profiles-dir", str(tmp_path), "--prometheus-operator")
    assert done.returncode == 2
    assert "no prometheus exporter" in done.stderr and done.stdout == ""
