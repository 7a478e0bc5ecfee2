"""`run` refuses an attribute selection naming what neither its gadget nor any
built-in gadget has (a typo), with the file and line, exit 2, before anything
is compiled or attached; `opt_in` names attributes in full, and warns about
one that series keep without it."""

from __future__ import annotations

from typer.testing import CliRunner

from ig_metrics.cli import app

PROFILES = """\
exporters:
  prom: {type: prometheus, listen: "127.0.0.1:9499"}
profiles:
  typo:
    exporters: [prom]
    attributes:
      exclude: [proces.pid]
"""


def test_a_misspelled_attribute_is_refused_with_its_file_and_line(tmp_path) -> None:
    (tmp_path / "p.yaml").write_text(PROFILES)
    result = CliRunner().invoke(app, ["run", "--gadget", "tcp", "--profile", "typo",
                                      "--profiles-dir", str(tmp_path), "--no-tui"])
    assert result.exit_code == 2
    assert (f"{tmp_path / 'p.yaml'}:7: attributes.exclude: 'proces.pid' is not an attribute "
            "of gadget tcp; did you mean 'process.pid'?") in result.output
    assert "attached" not in result.output


def validate(tmp_path, attributes: str):
    (tmp_path / "p.yaml").write_text(PROFILES.replace("exclude: [proces.pid]", attributes))
    return CliRunner().invoke(app, ["exporters", "validate", str(tmp_path / "p.yaml")])


def test_opt_in_names_attributes_in_full(tmp_path) -> None:
    result = validate(tmp_path, "opt_in: [process.*]")
    assert result.exit_code == 2
    assert (f"{tmp_path / 'p.yaml'}:7: profiles.typo.attributes.opt_in: 'process.*' is a "
            "prefix; name each attribute in full (e.g. process.pid)") in result.output


def test_opting_in_an_attribute_kept_anyway_is_warned_about(tmp_path) -> None:
    result = validate(tmp_path, "opt_in: [process.pid, process.command]")
    assert result.exit_code == 0, result.output
    assert (f"{tmp_path / 'p.yaml'}:7: warning: profiles.typo.attributes.opt_in: "
            "'process.command' is kept without opting in; opt_in names what series leave "
            "out by default: process.pid") in result.output
    assert "'process.pid'" not in result.output


def test_a_misspelled_opt_in_is_refused_by_run_with_its_file_and_line(tmp_path) -> None:
    (tmp_path / "p.yaml").write_text(PROFILES.replace("exclude: [proces.pid]",
                                                      "opt_in: [process.ppid]"))
    result = CliRunner().invoke(app, ["run", "--gadget", "tcp", "--profile", "typo",
                                      "--profiles-dir", str(tmp_path), "--no-tui"])
    assert result.exit_code == 2
    assert (f"{tmp_path / 'p.yaml'}:7: attributes.opt_in: 'process.ppid' is not an "
            "attribute of gadget tcp; did you mean 'process.pid'?") in result.output
