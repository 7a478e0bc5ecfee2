"""Gadgets a user writes: the worked example in examples/ runs end to end
through `ig-metrics run` with exact counts at a real OTLP receiver; mistakes
in a spec are FILE:LINE with exit code 2; C that does not compile is told in
the user's file and line, trimmed to what matters, without ending ig-metrics."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.cli import app
from tests.named_process import NamedProcess
from tests.receivers import OtlpGrpcReceiver, flatten

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gadgets" / "signals"
TEST_GADGETS = Path(__file__).resolve().parent / "gadgets"
IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")

SIGNALS = r"""
usr1, usr2 = map(int, args)
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
for _ in range(usr1):
    os.kill(os.getpid(), signal.SIGUSR1)
for _ in range(usr2):
    os.kill(os.getpid(), signal.SIGUSR2)
"""


def write_profile(directory: Path, exporter: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "profiles.yaml").write_text(
        f"exporters:\n  out: {exporter}\nprofiles:\n  user: {{exporters: [out], interval: 1s}}\n")
    return directory


def signals_seen(receiver: OtlpGrpcReceiver, **wanted) -> int | None:
    for (name, attributes), value in flatten(receiver.received).items():
        if name == "signals.generated" and wanted.items() <= dict(attributes).items():
            return value
    return None


@pytest.mark.bpf
def test_example_gadget_runs_end_to_end_with_exact_counts(tmp_path):
    with OtlpGrpcReceiver() as receiver:
        profiles = write_profile(tmp_path / "profiles", f"{{type: otlp-grpc, endpoint: "
                                 f"\"{receiver.endpoint}\", insecure: true}}")
        run = subprocess.Popen([IG_METRICS, "run", "--gadget", str(EXAMPLE), "--profile", "user",
                                "--profiles-dir", str(profiles), "--no-tui", "--duration", "6s"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        workload = NamedProcess("igm-sig", SIGNALS, "17", "3")
        try:
            receiver.wait_for(1, timeout=30)      # the first export: the gadget is attached
            workload.run()
            _, err = run.communicate(timeout=60)
        finally:
            workload.kill()
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, err
        mine = {"process.command": "igm-sig", "signal.target.command": "igm-sig",
                "signal.result": "ignored"}
        assert signals_seen(receiver, **mine, **{"signal.name": "SIGUSR1"}) == 17
        assert signals_seen(receiver, **mine, **{"signal.name": "SIGUSR2"}) == 3


def broken_copy(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """The example with one line of its spec changed; returns (folder, line)."""
    folder = tmp_path / "signals"
    shutil.copytree(EXAMPLE, folder)
    spec = folder / "gadget.yaml"
    lines = spec.read_text().split("\n")
    (index,) = [i for i, line in enumerate(lines) if old in line]
    lines[index] = lines[index].replace(old, new)
    spec.write_text("\n".join(lines))
    return folder, index + 1


@pytest.mark.parametrize("old,new,message", [
    ("field: sender, decoder: string}", "field: sender, decoder: strng}",
     "decoder: unknown decoder 'strng'; did you mean 'string'? Choose one of"),
    ("kind: counters}", "kind: counter}", "did you mean 'counters'?"),
    ("unit: \"{signal}\"", "units: \"{signal}\"", "unknown key 'units'; did you mean 'unit'?"),
    ("columns: [signals.generated]", "columns: [signals.sent]",
     "table.columns: 'signals.sent' is not a metric of this gadget"),
    ('tracepoint: "signal:signal_generate"}', 'tracepoint: "signal:signal_generate", when: x}',
     ".when: 'x' is not a parameter of this gadget"),
    ("unit: \"{signal}\"", "attributes: [signal]",
     ".attributes: 'signal' is not an attribute of this gadget; did you mean 'signal.name'?"),
])
@pytest.mark.parametrize("command", [["run", "--gadget"], ["gadgets", "describe"]])
def test_spec_mistakes_are_file_line_and_exit_2(tmp_path, old, new, message, command):
    folder, line = broken_copy(tmp_path, old, new)
    result = CliRunner().invoke(app, [*command, str(folder)])
    assert result.exit_code == 2, result.output
    assert f"{folder / 'gadget.yaml'}:{line}: " in result.output
    assert message in result.output


def test_parameter_declaration_mistakes_are_file_line(tmp_path):
    folder, line = broken_copy(tmp_path, "program: signals.bpf.c", "program: signals.bpf.c\n"
                               "parameters:\n"
                               "  - {name: limit, type: integer, default: yes, description: x}\n"
                               "  - {name: Bad-Name, type: float, default: 1, description: x}")
    result = CliRunner().invoke(app, ["gadgets", "describe", str(folder)])
    assert result.exit_code == 2
    spec = folder / "gadget.yaml"
    assert f"{spec}:{line + 2}: gadget.parameters[0].default: expected a whole number" \
        in result.output
    assert f"{spec}:{line + 3}: gadget.parameters[1].name: 'Bad-Name' is not valid" \
        in result.output
    assert f"{spec}:{line + 3}: gadget.parameters[1].type: unknown parameter type 'float'. " \
           "Choose one of: string, integer, boolean" in result.output


@pytest.mark.bpf
def test_c_that_does_not_compile_is_told_in_the_users_file_and_line(tmp_path):
    profiles = write_profile(tmp_path / "profiles", "{type: console}")
    run = subprocess.run([IG_METRICS, "run", "--gadget", str(TEST_GADGETS / "brokenc"),
                          "--profiles-dir", str(profiles), "--profile", "user", "--no-tui"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    source = TEST_GADGETS / "brokenc" / "brokenc.bpf.c"
    assert run.stderr.splitlines() == [
        "error: gadget brokenc: the BPF program does not compile:",
        f"{source}:16:16: error: use of undeclared identifier 'no_such_variable'",
        "    key.pid += no_such_variable;",
        "               ^",
    ]


@pytest.mark.bpf
def test_an_error_that_ends_the_compiler_is_told_and_ig_metrics_lives_on(bpf_available):
    """LLVM's code generator calls exit(1) on a stack over 512 bytes; a user's
    gadget is compiled in a child first, so this process survives to say so."""
    from ig_metrics.bpf.loader import GadgetLoadError, GadgetProgram
    from ig_metrics.gadgets import resolve

    spec = resolve(str(TEST_GADGETS / "bigstack"))
    with pytest.raises(GadgetLoadError) as caught:
        GadgetProgram(spec).load()
    assert str(caught.value) == (
        "gadget bigstack: the BPF program does not compile:\n"
        f"{spec.program}: error: in function on_exec: Looks like the BPF stack limit of 512 "
        "bytes is exceeded. Please move large on stack variables into BPF per-cpu array map.")


@pytest.mark.bpf
@pytest.mark.parametrize("old,new,message", [
    ("{map: signals, kind: counters}", "{map: signal, kind: counters}",
     "source signal: the BPF program defines no map named 'signal'"),
    ("field: sender,", "field: sendr,",
     "attribute process.command reads field 'sendr', which the series key does not have"),
    ("values: [{field: signals}]", "values: [{field: signal}]",
     "no counters or slots source has a field 'signal'"),
])
def test_spec_and_c_that_disagree_are_told_before_anything_runs(bpf_available, tmp_path, old,
                                                                  new, message):
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler
    from ig_metrics.pipeline.sources import SourceLayoutError

    folder, _ = broken_copy(tmp_path, old, new)
    program = GadgetProgram(resolve(str(folder)))
    program.load()
    try:
        with pytest.raises(SourceLayoutError, match=message):
            Sampler(program.spec, program, resource=())
    finally:
        program.close()


PER_RESULT = r"""
ignored, handled = map(int, args)
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
for _ in range(ignored):
    os.kill(os.getpid(), signal.SIGUSR1)
signal.signal(signal.SIGUSR1, lambda number, frame: None)
for _ in range(handled):
    os.kill(os.getpid(), signal.SIGUSR1)
"""


@pytest.mark.bpf
def test_a_metric_carrying_fewer_attributes_sums_the_series_it_merges(bpf_available, tmp_path):
    """A metric's `attributes` keeps some of the gadget's attributes: series
    that differ only in the others (here signal.result) become one point."""
    from ig_metrics.bpf.filters import ProcessFilter
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler
    from tests.snapshots import points

    folder = tmp_path / "signals"
    shutil.copytree(EXAMPLE, folder)
    spec_file = folder / "gadget.yaml"
    spec_file.write_text(spec_file.read_text().replace("\ntable:", """
  - name: signals.by.name
    kind: counter
    unit: "{signal}"
    description: Signals generated, by signal only.
    values: [{field: signals}]
    attributes: [signal.name]

table:"""))
    spec = resolve(str(folder))
    program = GadgetProgram(spec, process_filter=ProcessFilter(comm="igm-sig-sum"))
    workload = NamedProcess("igm-sig-sum", PER_RESULT, "5", "4")
    try:
        program.load()
        program.attach()
        sampler = Sampler(spec, program, resource=(), idle_expiry=0)
        workload.run()
        snapshot = sampler.tick()
    finally:
        program.close()
        workload.kill()
    by_result = {dict(point.attributes)["signal.result"]: point.value
                 for point in points(snapshot, "signals.generated", signal__name="SIGUSR1")}
    assert by_result == {"ignored": 5, "delivered": 4}
    (merged,) = points(snapshot, "signals.by.name", signal__name="SIGUSR1")
    assert dict(merged.attributes) == {"signal.name": "SIGUSR1"}
    assert merged.value == 9
