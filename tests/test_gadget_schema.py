"""`gadgets schema`: a valid draft 2020-12 JSON Schema made from the tables the
gadget.yaml reader uses; it accepts every gadget this repository ships (built-in,
example, test and benchmark gadgets) and refuses the mistakes a schema can see,
as the loader does, both naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ig_metrics.cli import app
from ig_metrics.gadgets import GadgetSpecError
from ig_metrics.gadgets.schema import json_schema
from ig_metrics.gadgets.spec import load_spec

# jsonschema is a test-only dependency (the `test` extra); without it these tests
# cannot check anything, so they say so instead of passing.
jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (test extra)")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted([*ROOT.glob("ig_metrics/gadgets/*/gadget.yaml"),
                  *ROOT.glob("examples/gadgets/*/gadget.yaml"),
                  *ROOT.glob("tests/gadgets/*/gadget.yaml"),
                  *ROOT.glob("benchmarks/gadgets/*/gadget.yaml")])

GOOD = """\
name: probe
program: probe.bpf.c
hooks:
  - {program: on_event, tracepoint: "sched:sched_process_exec"}
parameters:
  - {name: limit, type: integer, default: 3, minimum: 0, description: At most.}
attributes:
  - {name: process.pid, field: pid}
sources:
  - {map: counts, kind: counters}
  - {map: latency, kind: histogram}
metrics:
  - name: probe.events
    kind: counter
    unit: "{event}"
    description: Events.
    values: [{field: events}]
  - name: probe.latency
    kind: histogram
    unit: s
    description: Latency.
    source: latency
    kernel_unit: us
    buckets: 20
"""


def validator() -> jsonschema.protocols.Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def as_json(path: Path) -> object:
    """The file as an editor's YAML language server hands it to the schema
    (mapping keys become strings: `{0: unknown}` has the key "0")."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text())))


def test_the_command_prints_the_schema_and_it_is_valid_draft_2020_12():
    result = CliRunner().invoke(app, ["gadgets", "schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json_schema()
    jsonschema.Draft202012Validator.check_schema(json.loads(result.output))


def test_every_shipped_gadget_is_valid():
    assert len(SHIPPED) >= 14          # 7 built-in, the example, 5 test gadgets, 1 benchmark
    check = validator()
    for path in SHIPPED:
        errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
                  for error in check.iter_errors(as_json(path))]
        assert errors == [], f"{path}: {errors}"


@pytest.mark.parametrize("old,new,path,line,message", [
    ("    kind: counter", "    kind: countr", "metrics/0/kind", 14,
     "gadget.metrics[0].kind: unknown metric kind 'countr'; did you mean 'counter'?"),
    ("    unit: s", "    units: s", "metrics/1", 20,
     "gadget.metrics[1].units: unknown key 'units'; did you mean 'unit'?"),
    ("    buckets: 20", "    buckets: 65", "metrics/1/buckets", 24,
     "gadget.metrics[1].buckets: expected a whole number from 1 to 64, got 65"),
    ("    buckets: 20", "", "metrics/1", 18,
     "gadget.metrics[1]: a histogram needs 'buckets' (1 to 64)"),
    ('"sched:sched_process_exec"}', '"sched:sched_process_exec", raw_tracepoint: x}',
     "hooks/0", 4, "gadget.hooks[0]: give exactly one of tracepoint, raw_tracepoint"),
    ("default: 3,", "default: yes,", "parameters/0/default", 6,
     "gadget.parameters[0].default: expected a whole number, got True"),
    ("{map: counts, kind: counters}", "{map: counts, kind: slots}", "sources/0", 10,
     "gadget.sources[0]: a 'slots' source needs 'key_field'"),
    ("name: probe\n", "name: Probe\n", "name", 1,
     "gadget.name: 'Probe' is not valid; use lowercase letters, digits and _"),
])
def test_a_mistake_is_refused_by_the_schema_and_the_loader_naming_the_field(
        tmp_path, old, new, path, line, message):
    assert old in GOOD
    (tmp_path / "probe.bpf.c").write_text("/* empty */\n")
    spec = tmp_path / "gadget.yaml"
    spec.write_text(GOOD)
    check = validator()
    assert list(check.iter_errors(as_json(spec))) == []
    load_spec(spec)                      # the good one loads

    spec.write_text(GOOD.replace(old, new))
    paths = ["/".join(map(str, error.absolute_path)) for error in check.iter_errors(as_json(spec))]
    assert path in paths, paths
    with pytest.raises(GadgetSpecError) as caught:
        load_spec(spec)
    reported = [str(problem) for problem in caught.value.problems]
    assert f"{spec}:{line}: {message}" in "\n".join(reported), reported
