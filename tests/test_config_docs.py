"""docs/profiles.md stays true: its settings reference is the one generated from
the validator's tables, and its example file loads without errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ig_metrics.catalog.loading import load_catalog
from ig_metrics.catalog.reference import replace_reference, settings_reference
from ig_metrics.catalog.tables import EXPORTER_TYPES, exporter_fields

DOC = Path(__file__).parent.parent / "docs" / "profiles.md"


def test_settings_reference_is_current() -> None:
    document = DOC.read_text()
    assert replace_reference(document) == document, (
        "docs/profiles.md is stale: run python -m ig_metrics.catalog.reference docs/profiles.md")


@pytest.mark.parametrize("type_name", list(EXPORTER_TYPES))
def test_reference_names_every_setting_of_every_type(type_name: str) -> None:
    section = settings_reference().split(f"### `type: {type_name}`")[1].split("###")[0]
    for field in exporter_fields(type_name)[3:]:      # after type, interval, description
        assert f"| `{field.key}` |" in section


def test_example_file_of_the_doc_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = re.search(r"```yaml\n(exporters:.*?)```", DOC.read_text(), re.S).group(1)
    (tmp_path / "example.yaml").write_text(example)
    for name in ("ca.pem", "client.pem", "client-key.pem"):
        (tmp_path / name).write_text("placeholder")
    monkeypatch.setenv("IG_TENANT", "tenant")
    catalog = load_catalog([tmp_path])
    assert catalog.errors == []
    assert sorted(catalog.profiles) == ["local", "otlp-prod"]
    assert catalog.exporters["collector-http"].settings.endpoint == \
        "https://collector.example/v1/metrics"
