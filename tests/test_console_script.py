"""The installed `ig-metrics` console script, run as a user would: a separate
process, real exit codes, real stdout and stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
BAD = ROOT / "tests" / "config" / "bad"


def ig_metrics(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([IG_METRICS, *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_help_lists_every_command():
    """Each command the app registers has its own row in --help's command list,
    with its one-line description (not just its name somewhere in the text)."""
    import typer.main

    from ig_metrics.cli import app

    registered = {name for name in typer.main.get_command(app).commands}
    assert {"run", "doctor", "deploy", "mixin", "top", "exporters", "gadgets"} <= registered
    result = ig_metrics("--help", env={"COLUMNS": "100"})
    assert result.returncode == 0
    listed = set(re.findall(r"^│ ([a-z]+) {2,}\S", result.stdout, re.MULTILINE))
    assert listed == registered, result.stdout


def test_builtin_profiles_validate():
    result = ig_metrics("exporters", "validate", "profiles/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout


def test_a_mistake_is_reported_as_file_line_with_exit_2():
    result = ig_metrics("exporters", "validate", str(BAD / "duplicate-key.yaml"),
                        "--output", "json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert not report["ok"]
    problem = report["problems"][0]
    assert problem["file"].endswith("duplicate-key.yaml") and problem["line"] > 0
    assert "duplicate key" in problem["message"]


def test_list_never_prints_a_secret_from_the_environment(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "secrets.yaml").write_text(
        (ROOT / "tests" / "config" / "secrets" / "valid.yaml").read_text())
    env = {"IG_METRICS_TEST_SECRET": "s3cr3t-token",
           "IG_METRICS_TEST_SECRET_HOST": "s3cr3t-token.example",
           "IG_METRICS_TEST_SECRET_INTERVAL": "10s"}
    for output in ("table", "json"):
        result = ig_metrics("exporters", "list", "--profiles-dir", str(profiles),
                            "--output", output, env=env)
        assert result.returncode == 0, result.stderr
        assert "secret-grpc" in result.stdout and "***" in result.stdout
        assert "s3cr3t" not in result.stdout + result.stderr


def test_bad_flag_exits_2():
    result = ig_metrics("run", "--gadget", "tcp", "--top", "zero")
    assert result.returncode == 2
