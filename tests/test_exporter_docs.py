"""docs/exporters.md stays true: its YAML examples are valid templates, its
naming table is what the exporter serves, its console sample what it prints."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from ig_metrics.catalog.loading import load_catalog
from ig_metrics.exporters.prometheus.naming import prometheus_metric_name
from ig_metrics.exporters.registry import create_exporter
from tests.receivers import console_config, tcp_like_snapshot

DOC = Path(__file__).parent.parent / "docs" / "exporters.md"
TEXT = DOC.read_text()


@pytest.mark.parametrize("example", re.findall(r"```yaml\n(.*?)```", TEXT, re.S))
def test_yaml_examples_are_valid_templates(example, tmp_path, monkeypatch):
    (tmp_path / "example.yaml").write_text(example)
    for name in ("ca.pem", "client.pem", "client-key.pem", "server.pem", "server-key.pem"):
        (tmp_path / name).write_text("placeholder")
    monkeypatch.setenv("IG_TENANT", "tenant")
    monkeypatch.setenv("OTLP_TOKEN", "token")
    catalog = load_catalog([tmp_path])
    assert catalog.errors == []
    assert catalog.exporters


def test_naming_table_is_what_the_exporter_serves():
    rows = re.findall(r"^\| `([^`]+)` \| (counter|gauge|histogram) \| `([^`]+)` \| `([^`]+)` \|$",
                      TEXT, re.M)
    assert len(rows) == 10
    for name, kind, unit, prometheus in rows:
        assert prometheus_metric_name(name, unit, kind) == prometheus


def test_console_sample_is_what_it_prints():
    sample = re.search(r"```\n(# snapshot .*?)```", TEXT, re.S).group(1).splitlines()
    stream = io.StringIO()
    create_exporter(console_config("debug"), console=stream).export(tcp_like_snapshot(seq=7), 1.0)
    printed = stream.getvalue().splitlines()
    assert all(line in printed for line in sample)
