"""The installed `ig-metrics` console script, run as a user would: a separate
process, real exit codes, real stdout and stderr."""

from __future__ import annotations

import json
import os
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
    result = ig_metrics("--help")
    assert result.returncode == 0
    for command in ("run", "exporters", "gadgets", "doctor"):
        assert command in result.stdout


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
