"""`ig-metrics exporters list|validate|schema` through the real Typer app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.catalog.directories import BUILTIN_PROFILES_DIR
from ig_metrics.cli import app

CORPUS = Path(__file__).parent / "config"
REPO_PROFILES = Path(__file__).parent.parent / "profiles"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IG_METRICS_PROFILES_DIR", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("COLUMNS", "250")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def line_of(path: Path, text: str) -> int:
    return path.read_text().splitlines().index(text) + 1


def test_builtin_profiles_validate_clean() -> None:
    result = invoke("exporters", "validate", str(REPO_PROFILES))
    assert result.exit_code == 0
    assert result.stdout == (f"{REPO_PROFILES}: 2 files, 5 exporters, 7 profiles, "
                             "0 errors, 0 warnings\n")


def test_builtin_profiles_are_the_ones_the_issue_asks_for() -> None:
    result = invoke("exporters", "list", "--profiles-dir", str(BUILTIN_PROFILES_DIR), "-o", "json")
    listing = json.loads(result.stdout)
    profiles = {p["name"]: p["exporters"] for p in listing["profiles"]}
    types = {e["name"]: e["type"] for e in listing["exporters"]}
    assert {name: [types[e] for e in used] for name, used in profiles.items()} == {
        "local": ["prometheus"],
        "per-process": ["prometheus"],   # attributes: {opt_in: [process.pid]}
        "node": ["prometheus"],          # with gadgets: [tcp, dns, blockio, sched]
        "otlp-prod": ["prometheus", "otlp-grpc"],
        "hybrid": ["prometheus", "otlp-grpc", "otlp-http"],
        "remote-write": ["prometheus", "prometheus-remote-write"],
        "debug": ["console"],
    }


def test_list_json_describes_every_template() -> None:
    result = invoke("exporters", "list", "--profiles-dir", str(BUILTIN_PROFILES_DIR), "-o", "json")
    assert result.exit_code == 0
    listing = json.loads(result.stdout)
    file = BUILTIN_PROFILES_DIR / "exporters.yaml"
    rows = {row["name"]: row for row in listing["exporters"]}
    summary = {name: (row["type"], row["address"], row["interval"], row["temporality"],
                      row["profiles"], row["file"], row["line"]) for name, row in rows.items()}
    assert summary == {
        "prom-local": ("prometheus", "127.0.0.1:9464", None, None,
                       ["local", "per-process", "node", "otlp-prod", "hybrid", "remote-write"],
                       str(file),
                       line_of(file, "  prom-local:")),
        "otlp-collector": ("otlp-grpc", "localhost:4317", None, "cumulative",
                           ["otlp-prod", "hybrid"], str(file), line_of(file, "  otlp-collector:")),
        "otlp-http-local": ("otlp-http", "http://localhost:4318/v1/metrics", None, "cumulative",
                            ["hybrid"], str(file), line_of(file, "  otlp-http-local:")),
        "remote-write": ("prometheus-remote-write", "http://localhost:9090/api/v1/write", None,
                         None, ["remote-write"], str(file), line_of(file, "  remote-write:")),
        "console": ("console", "stdout", "5s", None, ["debug"], str(file),
                    line_of(file, "  console:")),
    }
    assert (listing["profiles_dir"], listing["chosen_by"]) == (str(BUILTIN_PROFILES_DIR),
                                                               "--profiles-dir")


def test_list_table_has_a_row_per_template() -> None:
    result = invoke("exporters", "list", "--profiles-dir", str(CORPUS / "good" / "split"))
    assert result.exit_code == 0
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ split")]
    cells = [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]
    file = CORPUS / "good" / "split" / "exporters.yaml"
    assert cells[:2] == [
        ["split-prom", "prometheus", "127.0.0.1:19464", "profile default", "-", "split",
         f"{file}:3"],
        ["split-console", "console", "stdout", "profile default", "-", "split", f"{file}:6"],
    ]
    assert ["split", "split-prom, split-console", "default", "",
            f"{CORPUS / 'good' / 'split' / 'profiles.yml'}:2"] in cells[2:]


def test_list_with_errors_prints_them_on_stderr_and_exits_2() -> None:
    directory = CORPUS / "bad" / "duplicate-across-files"
    result = invoke("exporters", "list", "--profiles-dir", str(directory))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "b.yaml:3: exporter 'prom' is defined twice" in result.stderr
    assert result.stderr.endswith(f"2 errors in {directory} (--profiles-dir); "
                                  "see `ig-metrics exporters validate`\n")


def test_list_warnings_go_to_stderr_and_exit_0(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "warn" / "unused-template.yaml", tmp_path)
    result = invoke("exporters", "list", "--profiles-dir", str(tmp_path), "-o", "json")
    assert result.exit_code == 0
    assert "warning: exporters.spare: not used by any profile" in result.stderr
    assert json.loads(result.stdout)["exporters"]


def test_validate_defaults_to_the_resolved_directory(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "bad.yaml").write_text("exporters:\n  e:\n    type: nope\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("exporters", "validate")
    assert result.exit_code == 2
    assert result.stdout.startswith(
        "profiles/bad.yaml:3: exporters.e.type: unknown exporter type")
    assert result.stdout.splitlines()[-1].startswith("profiles (./profiles): 1 file,")

    monkeypatch.setenv("IG_METRICS_PROFILES_DIR", str(BUILTIN_PROFILES_DIR))
    result = invoke("exporters", "validate")
    assert result.exit_code == 0
    assert result.stdout.startswith(
        f"{BUILTIN_PROFILES_DIR} ($IG_METRICS_PROFILES_DIR): 2 files")


def test_validate_profiles_dir_option() -> None:
    result = invoke("exporters", "validate", "--profiles-dir", str(CORPUS / "good" / "split"))
    assert result.exit_code == 0
    assert result.stdout == (f"{CORPUS / 'good' / 'split'} (--profiles-dir): 2 files, "
                             "2 exporters, 1 profile, 0 errors, 0 warnings\n")


def test_validate_refuses_paths_and_profiles_dir_together() -> None:
    result = invoke("exporters", "validate", str(REPO_PROFILES),
                    "--profiles-dir", str(REPO_PROFILES))
    assert result.exit_code == 2
    assert result.stderr == "give FILE_OR_DIR arguments or --profiles-dir, not both\n"


def test_validate_json_report() -> None:
    path = CORPUS / "warn" / "unused-template.yaml"
    result = invoke("exporters", "validate", str(path), "--output", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "ok": True,
        "files": [str(path)],
        "problems": [{"file": str(path), "line": 4, "severity": "warning",
                      "message": "exporters.spare: not used by any profile"}],
        "exporters": 2,
        "profiles": 1,
    }


def test_validate_several_paths_form_one_catalog() -> None:
    # split/profiles.yml alone names unknown exporters; with its sibling it is fine.
    split = CORPUS / "good" / "split"
    alone = invoke("exporters", "validate", str(split / "profiles.yml"))
    together = invoke("exporters", "validate",
                      str(split / "profiles.yml"), str(split / "exporters.yaml"))
    assert (alone.exit_code, together.exit_code) == (2, 0)


def test_bad_output_format_is_a_usage_error() -> None:
    assert invoke("exporters", "list", "--output", "yaml").exit_code == 2


@pytest.mark.parametrize(("command", "example"), [
    ("list", "ig-metrics exporters list --profiles-dir /etc/ig-metrics/profiles --output json"),
    ("validate", "ig-metrics exporters validate --output json"),
    ("schema", "# yaml-language-server: $schema=./profiles.schema.json"),
])
def test_help_teaches_with_examples(command: str, example: str) -> None:
    result = invoke("exporters", command, "--help")
    assert result.exit_code == 0
    assert example in result.stdout


def test_exporters_group_lists_its_commands() -> None:
    result = invoke("exporters", "--help")
    assert result.exit_code == 0
    for command in ("list", "validate", "schema"):
        assert command in result.stdout


def test_list_table_prints_brackets_as_written(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        'exporters:\n  v6:\n    type: prometheus\n    listen: "[::1]:9464"\n'
        'profiles:\n  p:\n    exporters: [v6]\n    description: "[/oops] [bold]x"\n')
    result = invoke("exporters", "list", "--profiles-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "[::1]:9464" in result.stdout and "[/oops] [bold]x" in result.stdout
