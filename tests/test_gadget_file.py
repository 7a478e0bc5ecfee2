"""The file gadget against the real kernel: a known number of opens and of
failed opens, counted exactly by command and errno; paths only when asked
for, and only under the prefix; bad parameters refused before anything runs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ig_metrics.cli import app
from tests.named_process import NamedProcess
from tests.snapshots import CONTAINER_ATTRIBUTES, points, total

OPENS = r"""
present, missing, directory, opens, misses, refusals = args
for _ in range(int(opens)):
    os.close(os.open(present, os.O_RDONLY))
for _ in range(int(misses)):
    try:
        os.open(missing, os.O_RDONLY)
    except FileNotFoundError:
        pass
for _ in range(int(refusals)):
    try:
        os.open(directory, os.O_WRONLY)           # a directory is not for writing
    except IsADirectoryError:
        pass
os.close(os.open("/etc/hostname", os.O_RDONLY))   # outside any test prefix
"""


def count_opens(tmp_path, parameters=(), **workload):
    """Attach the file gadget (with `--param` values), run the workload under
    the command name igm-file, read once."""
    from ig_metrics.bpf.filters import ProcessFilter
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    present = tmp_path / "present"
    present.write_text("x")
    spec = resolve("file").with_arguments(list(parameters))
    program = GadgetProgram(spec, process_filter=ProcessFilter(comm="igm-file"))
    process = NamedProcess("igm-file", OPENS, str(present), str(tmp_path / "missing"),
                           str(tmp_path), str(workload["opens"]), str(workload["misses"]),
                           str(workload["refusals"]))
    try:
        program.load()
        program.attach()
        sampler = Sampler(spec, program, resource=(), idle_expiry=0)
        process.run()
        return sampler.tick()
    finally:
        program.close()
        process.kill()


@pytest.mark.bpf
def test_opens_and_failures_are_exact_without_paths(bpf_available, tmp_path):
    snapshot = count_opens(tmp_path, opens=40, misses=7, refusals=3)
    mine = points(snapshot, "file.opens", process__command="igm-file")
    by_result = {dict(point.attributes).get("error.type", "ok"): point.value for point in mine}
    # 40 opens of the file, and /etc/hostname once
    assert by_result == {"ok": 41, "ENOENT": 7, "EISDIR": 3}
    assert all("file.path" not in dict(point.attributes) for point in mine)


@pytest.mark.bpf
def test_paths_are_counted_only_under_the_prefix(bpf_available, tmp_path):
    snapshot = count_opens(tmp_path, [f"path_prefix={tmp_path}/"], opens=5, misses=2,
                           refusals=0)
    mine = {dict(point.attributes)["file.path"]: point
            for point in points(snapshot, "file.opens", process__command="igm-file")}
    assert sorted(mine) == [f"{tmp_path}/missing", f"{tmp_path}/present"]
    assert mine[f"{tmp_path}/present"].value == 5
    assert dict(mine[f"{tmp_path}/missing"].attributes)["error.type"] == "ENOENT"
    assert mine[f"{tmp_path}/missing"].value == 2
    assert total(snapshot, "file.opens", file__path="/etc/hostname") == 0


@pytest.mark.bpf
def test_long_paths_are_cut_to_path_length(bpf_available, tmp_path):
    top = f"/{tmp_path.parts[1]}/"              # e.g. /tmp/: shorter than path_length
    snapshot = count_opens(tmp_path, [f"path_prefix={top}", "path_length=16"],
                           opens=3, misses=0, refusals=0)
    (point,) = points(snapshot, "file.opens", process__command="igm-file")
    assert dict(point.attributes)["file.path"] == f"{tmp_path}/present"[:15]
    assert point.value == 3


@pytest.mark.bpf
def test_entry_programs_run_only_with_a_prefix(bpf_available):
    """Without paths nothing needs the syscall's entry: those programs (one
    run per open) are not even loaded."""
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve

    loaded = {}
    for parameters in ([], ["path_prefix=/etc/"]):
        program = GadgetProgram(resolve("file").with_arguments(parameters))
        program.load()
        try:
            loaded[bool(parameters)] = {stat.name for stat in program.program_stats()}
        finally:
            program.close()
    assert loaded[False] == {"on_open_exit", "on_openat_exit", "on_openat2_exit", "on_creat_exit"}
    assert loaded[True] == loaded[False] | {"on_open_enter", "on_openat_enter",
                                            "on_openat2_enter", "on_creat_enter"}


@pytest.mark.parametrize("param,message", [
    ("path_prefx=/etc", "gadget file has no parameter 'path_prefx'; did you mean 'path_prefix'?"),
    ("path_length=8", "--param path_length: 8 is outside 16..256"),
    ("path_length=many", "--param path_length: 'many' is not a whole number"),
    ("path_prefix=/" + "x" * 70, "is longer than 64 bytes"),
    ("path_prefix", "--param: 'path_prefix' should be NAME=VALUE"),
])
def test_bad_parameters_exit_2_before_anything_runs(param, message):
    result = CliRunner().invoke(app, ["run", "--gadget", "file", "--param", param])
    assert result.exit_code == 2
    assert message in result.output


def test_parameters_become_c_macros():
    from ig_metrics.gadgets import resolve

    spec = resolve("file")
    assert spec.cflags() == ('-DPATH_PREFIX=""', "-DPATH_PREFIX_LEN=0", "-DPATH_LENGTH=128")
    quoted = spec.with_arguments(['path_prefix=/a"b\\c', "path_length=0x20"])
    assert quoted.cflags() == ('-DPATH_PREFIX="/a\\"b\\\\c"', "-DPATH_PREFIX_LEN=6",
                               "-DPATH_LENGTH=32")


def test_describe_shows_the_metric_and_the_parameters():
    import json

    data = json.loads(CliRunner().invoke(app, ["gadgets", "describe", "file", "-o",
                                               "json"]).output)
    (metric,) = data["metrics"]
    assert metric["name"] == "file.opens"
    assert metric["attributes"] == ["process.command", "error.type", "file.path",
                                    *CONTAINER_ATTRIBUTES]
    assert data["optional_attributes"] == ["error.type", "file.path", *CONTAINER_ATTRIBUTES]
    assert [(p["name"], p["type"], p["default"]) for p in data["parameters"]] == [
        ("path_prefix", "string", ""), ("path_length", "integer", 128)]
