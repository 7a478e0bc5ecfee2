"""`run` refuses an attribute selection naming what neither its gadget nor any
built-in gadget has (a typo), with the file and line, exit 2, before anything
is compiled or attached."""

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
