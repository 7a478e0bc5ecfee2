"""No secret reaches any output: header values and values from the environment are
*** in `exporters list` (table and json), in `validate` (text and json), in
error messages and in ExporterTemplate.redacted()."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.catalog.directories import BUILTIN_PROFILES_DIR
from ig_metrics.catalog.loading import load_catalog
from ig_metrics.cli import app
from ig_metrics.config import REDACTED, ConfigError, ExporterTemplate
from ig_metrics.exporters.otlp.common import OtlpSettings

SECRETS = Path(__file__).parent / "config" / "secrets"
SECRET = "s3cr3t-token"


@pytest.fixture(autouse=True)
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IG_METRICS_TEST_SECRET", SECRET)
    monkeypatch.setenv("IG_METRICS_TEST_SECRET_HOST", f"{SECRET}.example")
    monkeypatch.setenv("IG_METRICS_TEST_SECRET_INTERVAL", "7s")
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def valid_dir(tmp_path: Path) -> Path:
    shutil.copy(SECRETS / "valid.yaml", tmp_path)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output      # stdout and stderr together


def test_the_secrets_do_reach_the_settings(valid_dir: Path) -> None:
    # Without this, the tests below could pass because the secret went nowhere.
    catalog = load_catalog([valid_dir])
    grpc = catalog.exporters["secret-grpc"].settings
    assert dict(grpc.headers) == {"authorization": f"Bearer {SECRET}", "x-tenant": SECRET}
    assert grpc.endpoint == f"{SECRET}.example:4317"
    assert SECRET in catalog.exporters["secret-http"].settings.endpoint
    assert catalog.exporters["secret-prom"].settings.host == f"{SECRET}.example"


def test_redacted_template(valid_dir: Path) -> None:
    catalog = load_catalog([valid_dir])
    grpc = catalog.exporters["secret-grpc"].redacted()
    assert grpc["description"] == REDACTED
    assert grpc["settings"]["endpoint"] == REDACTED
    assert grpc["settings"]["headers"] == {"authorization": REDACTED, "x-tenant": REDACTED}
    assert grpc["settings"]["insecure"] is True           # not a secret: shown
    assert catalog.exporters["secret-http"].redacted()["settings"]["endpoint"] == REDACTED
    prom = catalog.exporters["secret-prom"].redacted()
    assert (prom["interval"], prom["settings"]["listen"]) == (REDACTED, REDACTED)
    profile = catalog.profiles["secret"].redacted()
    assert (profile["description"], profile["interval"]) == (REDACTED, REDACTED)


def test_list_table_shows_no_secret(valid_dir: Path) -> None:
    exit_code, output = run("exporters", "list", "--profiles-dir", str(valid_dir))
    assert exit_code == 0
    assert "secret-grpc" in output and REDACTED in output
    assert SECRET not in output


def test_list_json_shows_no_secret(valid_dir: Path) -> None:
    exit_code, output = run("exporters", "list", "--profiles-dir", str(valid_dir), "-o", "json")
    assert exit_code == 0
    assert '"address": "***"' in output
    assert SECRET not in output


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_validate_shows_no_secret(output_format: str) -> None:
    exit_code, output = run("exporters", "validate", str(SECRETS), "-o", output_format)
    assert exit_code == 2
    assert "invalid.yaml" in output and "not loopback" in output    # problems were printed
    assert SECRET not in output


def test_list_errors_show_no_secret() -> None:
    exit_code, output = run("exporters", "list", "--profiles-dir", str(SECRETS))
    assert exit_code == 2
    assert "(a value from the environment, not shown)" in output
    assert SECRET not in output


def test_config_error_shows_no_secret() -> None:
    catalog = load_catalog([SECRETS])
    with pytest.raises(ConfigError) as error:
        catalog.profile("secret")
    assert len(error.value.problems) == 9
    assert SECRET not in str(error.value)


def test_unset_default_is_shown_since_it_is_in_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def shown_endpoint() -> str:
        catalog = load_catalog([BUILTIN_PROFILES_DIR])
        return catalog.exporters["otlp-collector"].redacted()["settings"]["endpoint"]

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert shown_endpoint() == "localhost:4317"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector.internal:4317")
    assert shown_endpoint() == REDACTED


def test_header_values_are_redacted_even_without_secret_paths() -> None:
    # A template built by hand (as exporter tests do) carries no `secrets`.
    template = ExporterTemplate(
        name="hand-made", type="otlp-http",
        settings=OtlpSettings(endpoint="http://localhost:4318/v1/metrics",
                              headers=(("authorization", f"Bearer {SECRET}"),)),
        interval=None, file="test", line=1)
    assert template.redacted()["settings"]["headers"] == {"authorization": REDACTED}
