"""The console exporter's text and JSON lines, and the factory that builds every
exporter type from a profile's `type:`."""

from __future__ import annotations

import io
import json
import math

import pytest
from rich.console import Console

from ig_metrics.catalog.tables import EXPORTER_TYPES
from ig_metrics.exporters.base import ExportResult
from ig_metrics.exporters.console import ConsoleExporter
from ig_metrics.exporters.registry import EXPORTER_CLASSES, create_exporter
from ig_metrics.model.snapshot import HistogramValue, bucket_quantile
from tests.receivers import (
    LOG2_US_BOUNDS,
    START_NS,
    console_config,
    otlp_config,
    prometheus_config,
    tcp_like_snapshot,
)


def printed(format_: str, snapshot=None) -> str:
    stream = io.StringIO()
    exporter = create_exporter(console_config("console", format_), console=stream)
    assert exporter.export(snapshot or tcp_like_snapshot(seq=7), 1.0) is ExportResult.SUCCESS
    return stream.getvalue()


def test_text_is_one_line_per_series():
    lines = printed("text").splitlines()
    assert lines[0] == ("# snapshot 7 of gadget tcp at 2023-11-14T22:14:30.000+00:00: "
                        "7 points")
    assert lines[1] == ("tcp.sent{process.pid=4242,process.command=curl,"
                        "network.peer.address=127.0.0.1,server.port=8080,network.type=ipv4} "
                        "1000000")
    assert lines[2] == ('tcp.sent{process.pid=4343,process.command="nginx: worker",'
                        'network.peer.address=2001:db8::1,server.port=443,'
                        'network.type=ipv6} 2048')
    # Histograms: count, sum, and the bucket holding p50 / p99 (3 us, then the
    # overflow bucket past 2047 us).
    assert lines[6] == ("tcp.connect.duration{process.pid=4242,process.command=curl,"
                        "network.peer.address=127.0.0.1,server.port=8080,network.type=ipv4} "
                        "count=6 sum=0.007058 p50=3e-06 p99=+Inf")
    assert lines[7] == "ig_metrics.series{} 6"
    assert len(lines) == 8


def test_json_is_one_complete_object_per_series():
    records = [json.loads(line) for line in printed("json").splitlines()]
    assert len(records) == 7
    assert records[0] == {
        "seq": 7, "gadget": "tcp", "time_unix_nano": START_NS + 70_000_000_000,
        "start_time_unix_nano": START_NS, "metric": "tcp.sent", "kind": "counter",
        "unit": "By",
        "attributes": {"process.pid": 4242, "process.command": "curl",
                       "network.peer.address": "127.0.0.1", "server.port": 8080,
                       "network.type": "ipv4"},
        "resource": {"service.name": "ig-metrics", "host.name": "node-1",
                     "ig_metrics.gadget": "tcp"},
        "value": 1000000,
    }
    histogram = records[5]
    assert histogram["metric"] == "tcp.connect.duration"
    assert histogram["value"] == {"count": 6, "sum": 0.007058, "bounds": list(LOG2_US_BOUNDS),
                                  "counts": [0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1]}


def test_rich_console_output_goes_through_the_console():
    """With the live table up, lines must go through its Console to appear above it."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=300, force_terminal=False)
    exporter = create_exporter(console_config("console"), console=console)
    exporter.export(tcp_like_snapshot(), 1.0)
    assert "tcp.sent{process.pid=4242" in buffer.getvalue()
    assert exporter.target == "stdout"


def test_bucket_quantile_is_the_upper_bound_of_the_bucket():
    value = HistogramValue(counts=(0, 1, 2, 1, 0), sum=0.0, count=4)
    bounds = (0.0, 1.0, 3.0, 7.0)
    assert bucket_quantile(value, bounds, 0.25) == 1.0
    assert bucket_quantile(value, bounds, 0.5) == 3.0
    assert bucket_quantile(value, bounds, 1.0) == 7.0
    assert math.isinf(bucket_quantile(HistogramValue((0, 0, 0, 0, 1), 9.0, 1), bounds, 0.5))
    assert bucket_quantile(HistogramValue((0,) * 5, 0.0, 0), bounds, 0.5) is None


# --- the factory --------------------------------------------------------------------
def test_every_configurable_type_has_an_exporter_and_no_more():
    assert set(EXPORTER_CLASSES) == set(EXPORTER_TYPES)


@pytest.mark.parametrize("config, expected", [
    (prometheus_config("p"), "PrometheusExporter"),
    (otlp_config("g", "otlp-grpc", "localhost:4317", insecure=True), "OtlpGrpcExporter"),
    (otlp_config("h", "otlp-http", "http://localhost:4318"), "OtlpHttpExporter"),
    (console_config("c"), "ConsoleExporter"),
])
def test_factory_builds_by_type(config, expected):
    exporter = create_exporter(config)
    assert type(exporter).__name__ == expected
    assert exporter.name == config.name and exporter.type == config.type


def test_factory_passes_the_console_to_console_exporters_only():
    stream = io.StringIO()
    exporter = create_exporter(console_config("c"), console=stream)
    assert isinstance(exporter, ConsoleExporter) and exporter.stream is stream
    assert create_exporter(prometheus_config("p"), console=stream).target == "127.0.0.1:0"


def test_targets_say_where_data_goes():
    assert create_exporter(otlp_config("h", "otlp-http", "https://collector:4318")).target \
        == "https://collector:4318/v1/metrics"
    assert create_exporter(otlp_config("g", "otlp-grpc", "[::1]:4317")).target == "[::1]:4317"


@pytest.mark.bpf
def test_a_run_without_the_live_table_prints_exports_on_stdout_and_its_log_on_stderr(tmp_path):
    """`ig-metrics run --no-tui` with a console exporter: stdout carries the
    exports alone (a pipe to jq gets JSON lines only), stderr the log."""
    import subprocess

    from tests.test_run_e2e import IG_METRICS

    (tmp_path / "p.yaml").write_text("""
exporters:
  print-json: {type: console, format: json}
profiles:
  printed: {exporters: [print-json], interval: 1s}
""")
    run = subprocess.run([IG_METRICS, "run", "--gadget", "exec", "--profile", "printed",
                          "--profiles-dir", str(tmp_path), "--no-tui", "--duration", "3s"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert records and {record["gadget"] for record in records} == {"exec"}
    assert any(record.get("final") for record in records)
    assert "exporting to print-json (stdout)" in run.stderr
    assert "final reading" in run.stderr
    assert '"metric":' not in run.stderr
