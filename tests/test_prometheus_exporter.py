"""The prometheus exporter over real sockets: exact scraped values, promtool's
lint, two exporters side by side, IPv6, and a taken port reported plainly."""

from __future__ import annotations

import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ig_metrics.exporters.base import ExporterStartError, ExportResult
from ig_metrics.exporters.registry import create_exporter
from ig_metrics.model.snapshot import COUNTER, MetricData, MetricInfo, Point, Snapshot
from tests.receivers import (
    START_NS,
    prometheus_config,
    promtool_check,
    scrape,
    tcp_like_snapshot,
)

CURL = {"network_peer_address": "127.0.0.1", "network_type": "ipv4",
        "process_command": "curl", "process_pid": "4242", "server_port": "8080"}


@pytest.fixture
def exporter():
    started = create_exporter(prometheus_config("prom-local"))
    started.start()
    yield started
    started.shutdown(2.0)


def url_of(exporter, host: str = "127.0.0.1") -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{exporter.bound_port}/metrics"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_scrape_shows_exact_values_names_and_labels(exporter):
    assert exporter.export(tcp_like_snapshot(), 1.0) is ExportResult.SUCCESS
    text, content_type = scrape(url_of(exporter))
    assert content_type.startswith("text/plain")
    got = samples(text)
    assert got[("tcp_sent_bytes_total", frozenset(CURL.items()))] == 1_000_000
    assert got[("tcp_connections_opened_total", frozenset(CURL.items()))] == 3
    ipv6 = {**CURL, "network_peer_address": "2001:db8::1", "network_type": "ipv6",
            "process_command": "nginx: worker", "process_pid": "4343", "server_port": "443"}
    assert got[("tcp_sent_bytes_total", frozenset(ipv6.items()))] == 2048
    assert got[("ig_metrics_series", frozenset())] == 6
    assert "# HELP tcp_sent_bytes_total Bytes sent over TCP.\n" in text
    assert "# TYPE tcp_connect_duration_seconds histogram\n" in text


def test_histogram_buckets_are_cumulative_on_the_kernel_bounds(exporter):
    exporter.export(tcp_like_snapshot(), 1.0)
    got = samples(scrape(url_of(exporter))[0])
    buckets = {dict(labels)["le"]: value for (name, labels), value in got.items()
               if name == "tcp_connect_duration_seconds_bucket"}
    # Observations 1, 3, 3, 4, 2047 and 5000 us: those on a bound (1, 3, 2047 us)
    # are counted in the bucket whose `le` is that bound.
    assert buckets == {"0.0": 0, "1e-06": 1, "3e-06": 3, "7e-06": 4, "1.5e-05": 4,
                       "3.1e-05": 4, "6.3e-05": 4, "0.000127": 4, "0.000255": 4,
                       "0.000511": 4, "0.001023": 4, "0.002047": 5, "+Inf": 6}
    assert [float(le) for le in buckets if le != "+Inf"] == [
        (2 ** k - 1) / 1e6 for k in range(12)]
    assert got[("tcp_connect_duration_seconds_count", frozenset(CURL.items()))] == 6
    assert got[("tcp_connect_duration_seconds_sum", frozenset(CURL.items()))] == 0.007058


def test_resource_attributes_are_one_target_info(exporter):
    exporter.export(tcp_like_snapshot(), 1.0)
    got = samples(scrape(url_of(exporter))[0])
    infos = [dict(labels) for (name, labels), _ in got.items() if name == "target_info"]
    assert infos == [{"service_name": "ig-metrics", "host_name": "node-1",
                      "ig_metrics_gadget": "tcp"}]
    # ... and nowhere else.
    assert not [labels for (name, labels), _ in got.items()
                if name != "target_info" and "host_name" in dict(labels)]


def test_promtool_finds_nothing_to_complain_about(exporter):
    exporter.export(tcp_like_snapshot(), 1.0)
    text = scrape(url_of(exporter))[0]
    assert promtool_check(text) == (0, "")


def test_openmetrics_is_served_when_asked_for(exporter):
    exporter.export(tcp_like_snapshot(), 1.0)
    text, content_type = scrape(url_of(exporter), "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert "# TYPE tcp_sent_bytes counter\n# UNIT tcp_sent_bytes bytes\n" in text
    assert text.endswith("# EOF\n")


def test_scrapes_of_one_snapshot_in_either_format_agree(exporter):
    """One snapshot is rendered once and served to every scrape, in any format."""
    exporter.export(tcp_like_snapshot(), 1.0)
    first = scrape(url_of(exporter))[0]
    openmetrics = scrape(url_of(exporter), "application/openmetrics-text; version=1.0.0")[0]
    assert samples(scrape(url_of(exporter))[0]) == samples(first)
    assert scrape(url_of(exporter))[0] == first
    assert "tcp_sent_bytes_total{" in openmetrics


def test_a_scrape_before_the_first_export_is_empty_not_an_error(exporter):
    assert scrape(url_of(exporter))[0] == ""


def test_a_scrape_shows_only_the_latest_snapshot(exporter):
    exporter.export(tcp_like_snapshot(seq=1, sent=10), 1.0)
    exporter.export(tcp_like_snapshot(seq=2, sent=25), 1.0)
    got = samples(scrape(url_of(exporter))[0])
    assert got[("tcp_sent_bytes_total", frozenset(CURL.items()))] == 25


def test_two_exporters_serve_independently_on_two_ports():
    first = create_exporter(prometheus_config("prom-a"))
    second = create_exporter(prometheus_config("prom-b"))
    first.start()
    second.start()
    try:
        assert first.bound_port != second.bound_port
        first.export(tcp_like_snapshot(sent=111), 1.0)
        second.export(tcp_like_snapshot(sent=222), 1.0)
        key = ("tcp_sent_bytes_total", frozenset(CURL.items()))
        assert samples(scrape(url_of(first))[0])[key] == 111
        assert samples(scrape(url_of(second))[0])[key] == 222
        second.shutdown(2.0)
        assert samples(scrape(url_of(first))[0])[key] == 111    # still serving
    finally:
        first.shutdown(2.0)
        second.shutdown(2.0)


def test_ipv6_listen_address():
    exporter = create_exporter(prometheus_config("prom-v6", host="::1"))
    exporter.start()
    try:
        assert exporter.target.startswith("[::1]:")
        exporter.export(tcp_like_snapshot(), 1.0)
        assert "tcp_sent_bytes_total" in scrape(url_of(exporter, "::1"))[0]
    finally:
        exporter.shutdown(2.0)


def test_port_in_use_names_the_exporter_the_address_and_what_to_change():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exporter = create_exporter(prometheus_config("prom-local", port=port))
        with pytest.raises(ExporterStartError) as raised:
            exporter.start()
    assert str(raised.value) == (
        f"exporter prom-local: cannot listen on 127.0.0.1:{port}: address already in use; "
        f"another ig-metrics or exporter may be running — change `listen` in "
        f"profiles/test.yaml:3")


def test_shutdown_frees_the_port():
    exporter = create_exporter(prometheus_config("prom-local"))
    exporter.start()
    port = exporter.bound_port
    exporter.shutdown(2.0)
    again = create_exporter(prometheus_config("prom-local", port=port))
    again.start()
    again.shutdown(2.0)


def test_a_name_taken_twice_is_served_once(exporter):
    info = MetricInfo("tcp.calls", COUNTER, "", "first")
    twin = MetricInfo("tcp_calls", COUNTER, "", "second")
    snapshot = Snapshot(1, START_NS, "t", (), (MetricData(info, (Point((), 1, START_NS),)),
                                                MetricData(twin, (Point((), 2, START_NS),))))
    exporter.export(snapshot, 1.0)
    text = scrape(url_of(exporter))[0]
    assert samples(text) == {("tcp_calls_total", frozenset()): 1}
    assert promtool_check(text) == (0, "")
