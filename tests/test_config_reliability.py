"""The reliability settings, as the rest of ig-metrics gets them (retry, queue,
limits, the Prometheus endpoint's tls and basic_auth), and the standard
OTEL_EXPORTER_OTLP_* variables as defaults of what a template leaves out."""

from __future__ import annotations

from pathlib import Path

import pytest

from ig_metrics.catalog.loading import load_catalog
from ig_metrics.config import REDACTED
from ig_metrics.config.model import LimitSettings
from ig_metrics.exporters.delivery.queue import QueueSettings
from ig_metrics.exporters.delivery.retry import RetrySettings
from ig_metrics.exporters.prometheus.webserver import ServerTlsSettings

GOOD = Path(__file__).parent / "config" / "good"
HASH = "$2b$10$GtxjFJ/UsgGYYvOEgtzH1OYYI5vydIcZv/VDhtOg6RW.NTuZosJci"


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None):
    (tmp_path / "p.yaml").write_text(text)
    return load_catalog([tmp_path / "p.yaml"], environ=environ or {})


def test_reliability_settings_reach_the_settings_objects(tmp_path):
    (tmp_path / "server.pem").write_text("cert")
    (tmp_path / "server-key.pem").write_text("key")
    catalog = load(tmp_path, f"""
exporters:
  central:
    type: otlp-http
    endpoint: https://collector.example
    temporality: delta
    retry: {{initial: 500ms, max: 1m, max_elapsed: 2h}}
    queue: {{max_batches: 50, max_bytes: 8MiB, dir: queue}}
    limits:
      max_series: 500
      max_series_by_metric: {{tcp.sent: 5000}}
      max_points_per_export: 200
      min_interval: 5s
      max_interval: 2m
      max_export_share: 25%
  scrape:
    type: prometheus
    tls: {{cert_file: server.pem, key_file: server-key.pem}}
    basic_auth: {{prometheus: "{HASH}"}}
profiles:
  prod: {{exporters: [central, scrape], interval: 1s}}
""")
    assert catalog.errors == []
    central = catalog.exporters["central"].settings
    assert central.retry == RetrySettings(initial=0.5, max=60.0, max_elapsed=7200.0)
    assert central.queue == QueueSettings(max_batches=50, max_bytes=8 * 1024 * 1024,
                                          dir=tmp_path / "queue")
    assert central.limits == LimitSettings(
        max_series=500, max_series_by_metric=(("tcp.sent", 5000),), max_points_per_export=200,
        min_interval=5.0, max_interval=120.0, max_export_share=0.25)
    scrape = catalog.exporters["scrape"]
    assert scrape.settings.tls == ServerTlsSettings(tmp_path / "server.pem",
                                                    tmp_path / "server-key.pem")
    assert scrape.settings.basic_auth == (("prometheus", HASH),)
    # Hashes are never shown.
    assert scrape.redacted()["settings"]["basic_auth"] == {"prometheus": REDACTED}
    # min_interval is a floor under the profile's 1s.
    resolved = catalog.profile("prod")
    assert [(e.name, e.interval, e.requested_interval) for e in resolved.exporters] == [
        ("central", 5.0, 1.0), ("scrape", 1.0, 1.0)]
    assert resolved.exporters[0].max_interval == 120.0
    assert resolved.exporters[1].max_interval == 8.0         # 8 x its interval


def test_defaults_without_the_new_settings(tmp_path):
    catalog = load(tmp_path, "exporters: {c: {type: otlp-grpc, endpoint: 'x:1'}}\n")
    settings = catalog.exporters["c"].settings
    assert (settings.retry, settings.queue, settings.limits) == (
        RetrySettings(), QueueSettings(), LimitSettings())
    assert settings.limits.max_series is None and settings.limits.max_points_per_export == 1000


OTEL = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318",
    "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t0ken,x-tenant=a",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
    "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
}


def test_otel_variables_fill_what_a_template_leaves_out(tmp_path):
    catalog = load(tmp_path, """
exporters:
  from-env: {type: otlp-http}
  written: {type: otlp-http, endpoint: "http://localhost:4318", timeout: 1s,
            headers: {x-own: mine}}
""", OTEL)
    assert catalog.errors == []
    env = catalog.exporters["from-env"].settings
    assert env.endpoint == "https://collector.example:4318/v1/metrics"   # base URL + path
    assert env.headers == (("authorization", "Bearer t0ken"), ("x-tenant", "a"))
    assert (env.timeout, env.compression, env.temporality) == (2.5, "gzip", "delta")
    written = catalog.exporters["written"].settings
    assert (written.endpoint, written.timeout, written.headers) == (
        "http://localhost:4318/v1/metrics", 1.0, (("x-own", "mine"),))   # the file wins
    shown = catalog.exporters["from-env"].redacted()["settings"]
    assert shown["endpoint"] == shown["timeout"] == REDACTED
    assert "t0ken" not in str(catalog.exporters["from-env"].redacted())


def test_the_metrics_variable_wins_and_grpc_takes_its_scheme(tmp_path):
    catalog = load(tmp_path, "exporters: {g: {type: otlp-grpc}}\n", {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://ignored.example:4317",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector.example:4317",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "X-Tenant=b"})
    settings = catalog.exporters["g"].settings
    assert (settings.endpoint, settings.insecure) == ("http://collector.example:4317", True)
    assert settings.headers == (("x-tenant", "b"),)       # gRPC metadata is lowercase


def test_certificate_variables_become_tls_files(tmp_path):
    for name in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / name).write_text("pem")
    catalog = load(tmp_path, "exporters: {g: {type: otlp-grpc, endpoint: 'c.example:4317'}}\n",
                   {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(tmp_path / "ca.pem"),
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(tmp_path / "c.pem"),
                    "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(tmp_path / "k.pem")})
    tls = catalog.exporters["g"].settings.tls
    assert (tls.ca_file, tls.cert_file, tls.key_file) == (
        tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "k.pem")


@pytest.mark.parametrize("variable, value, message", [
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s",
     "exporters.g.timeout (from $OTEL_EXPORTER_OTLP_TIMEOUT): (a value from the environment, "
     "not shown) is not a positive whole number of milliseconds"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "authorization",
     "exporters.g.headers (from $OTEL_EXPORTER_OTLP_HEADERS): item 1 is not name=value "
     "(the value is not shown)"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd",
     "exporters.g.compression (from $OTEL_EXPORTER_OTLP_COMPRESSION): unknown value "
     "(a value from the environment, not shown). Choose one of: gzip, none"),
])
def test_a_bad_variable_is_named_with_the_template_line_and_its_value_hidden(
        tmp_path, variable, value, message):
    catalog = load(tmp_path, "exporters:\n  g: {type: otlp-grpc, endpoint: 'c.example:4317'}\n",
                   {variable: value})
    assert [(p.line, p.message) for p in catalog.errors] == [(2, message)]


def test_an_endpoint_may_come_from_the_environment_only(tmp_path):
    missing = load(tmp_path, "exporters:\n  g: {type: otlp-grpc}\n")
    assert "or set $OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT" \
        in missing.errors[0].message
    given = load(tmp_path, "exporters:\n  g: {type: otlp-grpc}\n",
                 {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector.example:4317"})
    assert given.errors == [] and given.exporters["g"].settings.endpoint == \
        "collector.example:4317"
