"""`ig-metrics gadgets list|describe`, the generated catalog page, and the
validation of gadget specs (FILE:LINE for every mistake)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.app.gadget_catalog import markdown_catalog
from ig_metrics.cli import app
from ig_metrics.gadgets import GadgetSpecError, builtin_specs, resolve
from ig_metrics.gadgets.spec import load_spec
from tests.snapshots import CONTAINER_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

TCP_METRICS = ["tcp.sent", "tcp.received", "tcp.connections.opened", "tcp.connections.closed",
               "tcp.retransmits", "tcp.resets", "tcp.connect.duration",
               "tcp.connection.duration"]


def test_list_shows_every_builtin_gadget_as_table_and_json():
    table = runner.invoke(app, ["gadgets", "list"])
    assert table.exit_code == 0
    assert "tcp" in table.output and "tcp.sent" in table.output
    listed = json.loads(runner.invoke(app, ["gadgets", "list", "--output", "json"]).output)
    assert [entry["name"] for entry in listed] == [spec.name for spec in builtin_specs()]
    assert next(entry for entry in listed if entry["name"] == "tcp")["metrics"] == TCP_METRICS


def test_describe_tcp_gives_every_metric_with_attributes_and_exact_bounds():
    data = json.loads(runner.invoke(app, ["gadgets", "describe", "tcp", "-o", "json"]).output)
    assert [metric["name"] for metric in data["metrics"]] == TCP_METRICS
    sent = data["metrics"][0]
    assert sent["prometheus"] == "tcp_sent_bytes_total" and sent["unit"] == "By"
    assert sent["attributes"] == ["process.pid", "process.command", "network.peer.address",
                                  "server.port", "network.type", "tcp.connection.direction",
                                  *CONTAINER_ATTRIBUTES, "k8s.peer.pod.name",
                                  "k8s.peer.namespace.name"]
    resets = next(m for m in data["metrics"] if m["name"] == "tcp.resets")
    assert resets["attributes"][-1] == "network.io.direction"
    connect = next(m for m in data["metrics"] if m["name"] == "tcp.connect.duration")
    assert connect["bounds"][:4] == [0.0, 1e-06, 3e-06, 7e-06]
    assert connect["bounds"][-1] == (2 ** 26 - 1) / 1e6
    text = runner.invoke(app, ["gadgets", "describe", "tcp"]).output
    for name in TCP_METRICS:
        assert name in text


def test_describe_a_gadget_folder_by_path():
    result = runner.invoke(app, ["gadgets", "describe",
                                 str(ROOT / "tests" / "gadgets" / "histprobe")])
    assert result.exit_code == 0 and "probe.value" in result.output


def test_unknown_gadget_suggests_and_exits_2():
    result = runner.invoke(app, ["gadgets", "describe", "tpc"])
    assert result.exit_code == 2
    assert "did you mean 'tcp'" in result.output
    assert "available: " in result.output and ", tcp" in result.output.split("available: ")[1]


def test_catalog_page_is_current():
    page = (ROOT / "docs" / "gadgets.md").read_text()
    assert page == markdown_catalog(builtin_specs()), \
        "docs/gadgets.md is stale: regenerate it with " \
        "python -c 'from ig_metrics.gadgets import builtin_specs; " \
        "from ig_metrics.app.gadget_catalog import markdown_catalog; " \
        "print(markdown_catalog(builtin_specs()), end=\"\")' > docs/gadgets.md"


GOOD_SPEC = """\
name: probe
summary: a test
program: probe.bpf.c
hooks:
  - {program: on_event, tracepoint: "sched:sched_process_exec"}
attributes:
  - {name: process.pid, field: pid}
sources:
  - {map: counts, kind: counters}
metrics:
  - name: probe.events
    kind: counter
    unit: "{event}"
    description: Events.
    values: [{field: events}]
"""


@pytest.mark.parametrize("replace,line,message", [
    ("name: probe", 1, "gadget.name: 'Probe!' is not valid"),
    ("summary: a test", 2, "unknown key 'sumary'; did you mean 'summary'?"),
    ('  - {program: on_event, tracepoint: "sched:sched_process_exec"}', 5,
     "should be 'category:event'"),
    ("  - {name: process.pid, field: pid}", 7, "decoder 'inet_ip' needs 'family_field'"),
    ("  - {map: counts, kind: counters}", 9, "gadget.sources[0].kind: unknown source kind "
                                             "'counter'; did you mean 'counters'? Choose "
                                             "one of: slots, counters, histogram"),
    ("    kind: counter", 11, "a histogram needs 'kernel_unit'"),
    ("    values: [{field: events}]", 11, "a counter needs 'values'"),
])
def test_spec_mistakes_are_reported_at_their_line(tmp_path, replace, line, message):
    broken = {
        "name: probe": "name: Probe!",
        "summary: a test": "sumary: a test",
        '  - {program: on_event, tracepoint: "sched:sched_process_exec"}':
            '  - {program: on_event, tracepoint: "sched_process_exec"}',
        "  - {name: process.pid, field: pid}":
            "  - {name: process.pid, field: pid, decoder: inet_ip}",
        "  - {map: counts, kind: counters}": "  - {map: counts, kind: counter}",
        "    kind: counter": "    kind: histogram",
        "    values: [{field: events}]": "",
    }[replace]
    (tmp_path / "probe.bpf.c").write_text("/* empty */\n")
    (tmp_path / "gadget.yaml").write_text(GOOD_SPEC.replace(replace, broken))
    with pytest.raises(GadgetSpecError) as caught:
        load_spec(tmp_path / "gadget.yaml")
    reported = [str(problem) for problem in caught.value.problems]
    assert any(text.startswith(f"{tmp_path / 'gadget.yaml'}:{line}:") and message in text
               for text in reported), reported


def test_good_spec_and_builtin_specs_load(tmp_path):
    (tmp_path / "probe.bpf.c").write_text("/* empty */\n")
    (tmp_path / "gadget.yaml").write_text(GOOD_SPEC)
    assert load_spec(tmp_path / "gadget.yaml").metrics[0].name == "probe.events"
    assert resolve("tcp").name == "tcp"
