"""The scrape text written straight from snapshots (exporters/prometheus/text.py)
is, byte for byte, what prometheus_client's own encoders make of the
collector's families, in every format and escaping a scraper may ask for, and
the exporter's HTTP answers are the library app's (headers, gzip, filters)."""

from __future__ import annotations

import gzip
import io
import random
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

from ig_metrics.config.model import LimitSettings
from ig_metrics.exporters.delivery.limits import SeriesLimiter
from ig_metrics.exporters.prometheus.exporter import SnapshotCollector
from ig_metrics.exporters.prometheus.text import _go_int, go_float, make_app, text_format
from ig_metrics.exporters.registry import create_exporter
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)
from tests.receivers import LOG2_US_BOUNDS, RESOURCE, START_NS, prometheus_config, tcp_like_snapshot

# Accept headers: none (classic 0.0.4), Prometheus 2.42's, and every format
# and escaping prometheus_client's choose_encoder knows.
ACCEPTS = [
    None,
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/openmetrics-text",
    "application/openmetrics-text; version=2.0.0",
    *(f"application/openmetrics-text; version=1.0.0; escaping={escaping}"
      for escaping in ("underscores", "dots", "values", "allow-utf-8", "bogus")),
    *(f"text/plain; version=1.0.0; escaping={escaping}"
      for escaping in ("underscores", "dots", "values", "allow-utf-8")),
    "text/plain; version=0.0.4",
]


def served(collector: SnapshotCollector, accept: str | None) -> bytes | None:
    fmt = text_format(choose_encoder(accept)[0])
    assert fmt is not None, accept
    chunks = collector.text(fmt)
    return None if chunks is None else b"".join(chunks)


def library_text(collector: SnapshotCollector, accept: str | None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return choose_encoder(accept)[0](registry)


def assert_same_as_library(snapshot: Snapshot | None, collector: SnapshotCollector | None = None,
                           ) -> None:
    collector = collector or SnapshotCollector()
    if snapshot is not None:
        collector.show(snapshot)
    for accept in ACCEPTS:
        assert served(collector, accept) == library_text(collector, accept), accept


def odd_labels_snapshot() -> Snapshot:
    """Label values that need escaping, names that collide once sanitised, an
    attribute named le, bools, empty attributes and an overflow series."""
    odd = (("path", 'C:\\temp\\"new"\nline'), ("snow", "☃ ünïcode"), ("process.pid", 7),
           ("process_pid", 8), ("flag", True), ("0day", "x"), ("__reserved", "y"),
           ("dotted.name_with_underscores", "z"))
    with_le = (("le", "attribute"), ("a", "first"), ("z", "last"))
    only_late = (("zz", "after le"),)
    only_early = (("aa", "before le"),)
    counter = MetricInfo("odd.count", COUNTER, "{thing}", 'Help with "quotes", \\ and\nnewline.')
    histogram = MetricInfo("odd.latency", HISTOGRAM, "ms", "", (0.5, 1.0, 1e6, 1.5e-7))
    gauge = MetricInfo("odd.ratio", GAUGE, "1", "")
    value = HistogramValue((1, 0, 2, 3, 4), 12.25, 10)
    series = [odd, with_le, only_late, only_early, (), (("otel.metric.overflow", True),)]
    return Snapshot(1, START_NS, "t", RESOURCE + (("odd.value", 'a"b'),), (
        MetricData(counter, tuple(Point(attributes, index, START_NS)
                                  for index, attributes in enumerate(series))),
        MetricData(histogram, tuple(Point(attributes, value, START_NS) for attributes in series)),
        MetricData(gauge, tuple(Point(attributes, 0.25 * index, START_NS)
                                for index, attributes in enumerate(series))),
    ))


def test_tcp_snapshot_in_every_format():
    assert_same_as_library(tcp_like_snapshot())


def test_labels_that_need_escaping_collide_or_are_named_le():
    assert_same_as_library(odd_labels_snapshot())


VALUES = [0, 1, 7, 999_999, 1_000_000, 1_000_001, 1_234_567, 10**15, 2**53, 2**53 + 1, 10**17,
          2**63 - 1, -1, -999_999, -10**7, 0.0, -0.0, 0.1, 1e-7, 123456.789, 1234567.0, 1e21,
          float("inf"), float("-inf"), float("nan"), True, False]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_are_written_as_the_library_writes_them(value):
    assert go_float(value) == floatToGoString(value)
    info = MetricInfo("x.value", GAUGE, "", "")
    assert_same_as_library(Snapshot(1, START_NS, "t", (), (
        MetricData(info, (Point((("a", "b"),), value, START_NS), Point((), value, START_NS))),)))


def test_ints_of_a_million_and_more_are_written_as_the_library_writes_them():
    rng = random.Random(5)
    values = [rng.randrange(10**6, 2**53 + 1) for _ in range(3000)] + [
        10**6, 10**6 + 1, 1_200_000, 10**15, 2**53, 2**53 - 1, 999_999, 0]
    for value in values[:-2]:
        assert _go_int(value) == floatToGoString(value).encode(), value
    info = MetricInfo("x.bytes", COUNTER, "By", "")
    for some in (values, values + [2**53 + 1], values + [0.5], values + [-1]):
        assert_same_as_library(Snapshot(1, START_NS, "t", (), (MetricData(info, tuple(
            Point((("n", index),), value, START_NS) for index, value in enumerate(some))),)))


def test_histograms_with_large_counts_and_no_bounds():
    big = MetricInfo("x.big", HISTOGRAM, "s", "", LOG2_US_BOUNDS)
    none = MetricInfo("x.none", HISTOGRAM, "s", "", ())
    counts = tuple(10**k for k in range(len(LOG2_US_BOUNDS) + 1))
    odd = MetricInfo("x.odd", HISTOGRAM, "s", "", (1.0, 2.0, 3.0, 4.0))
    assert_same_as_library(Snapshot(1, START_NS, "t", (), (
        MetricData(big, (Point((("a", 1),), HistogramValue(counts, 1e9, sum(counts)),
                               START_NS),)),
        MetricData(none, (Point((), HistogramValue((5,), 0.5, 5), START_NS),)),
        # Not what the sampler makes, written as the library writes it all the same.
        MetricData(odd, (Point((), HistogramValue((3, -1, 2, 0, 1), 0.5, 5), START_NS),
                         Point((), HistogramValue((1, 2.5, True, 0, 0), 0.5, 4.5), START_NS))),
    )))


def test_overflow_series_from_the_cardinality_limit():
    limiter = SeriesLimiter(LimitSettings(max_series=2))
    limited, folded, _ = limiter.apply(tcp_like_snapshot())
    assert folded
    assert_same_as_library(limited)


def test_a_name_taken_twice_no_resource_and_a_metric_without_points():
    first = MetricInfo("tcp.calls", COUNTER, "", "first")
    twin = MetricInfo("tcp_calls", COUNTER, "", "second")
    empty = MetricInfo("tcp.idle", GAUGE, "", "")
    assert_same_as_library(Snapshot(1, START_NS, "t", (), (
        MetricData(first, (Point((), 1, START_NS),)), MetricData(twin, (Point((), 2, START_NS),)),
        MetricData(empty, ()))))


def test_before_the_first_snapshot():
    assert_same_as_library(None)


def test_snapshot_after_snapshot_with_series_coming_and_going():
    collector = SnapshotCollector()
    base = tcp_like_snapshot()
    for seq in range(1, 6):
        snapshot = replace(tcp_like_snapshot(seq=seq, sent=seq * 100),
                           metrics=base.metrics[seq % 2:])
        assert_same_as_library(snapshot, collector)
    # Equal attributes in new tuples (built anew each tick) are found by value.
    copied = replace(base, metrics=tuple(
        MetricData(data.info, tuple(point._replace(attributes=tuple(list(point.attributes)))
                                    for point in data.points)) for data in base.metrics))
    assert_same_as_library(copied, collector)


def test_each_series_labels_are_written_once_while_it_lives():
    collector = SnapshotCollector()
    collector.show(Snapshot(1, START_NS, "t", (), ()))
    served(collector, None)
    cache = collector._renderer._labels["underscores"]
    made, make = [], cache.make
    cache.make = lambda attributes: made.append(attributes) or make(attributes)
    attributes = [(("n", index), ("kind", "same tuple every tick")) for index in range(20)]
    counter = MetricInfo("x.count", COUNTER, "", "")
    histogram = MetricInfo("x.spread", HISTOGRAM, "s", "", (1.0,))
    for seq in range(1, 5):
        assert_same_as_library(Snapshot(seq, START_NS, "t", (), (
            MetricData(counter, tuple(Point(a, seq, START_NS) for a in attributes)),
            MetricData(histogram, tuple(Point(a, HistogramValue((seq, 1), 1.0, seq + 1),
                                              START_NS) for a in attributes[:5])),
        )), collector)
    assert made == attributes


def test_the_label_cache_keeps_only_the_series_of_the_latest_scrape():
    collector = SnapshotCollector()
    info = MetricInfo("x.count", COUNTER, "", "")

    def snapshot(series: int) -> Snapshot:
        return Snapshot(1, START_NS, "t", (), (MetricData(info, tuple(
            Point((("n", index),), index, START_NS) for index in range(series))),))

    assert_same_as_library(snapshot(50), collector)
    assert len(collector._renderer._labels["underscores"]) == 50
    assert_same_as_library(snapshot(10), collector)
    assert len(collector._renderer._labels["underscores"]) == 10


# --- the HTTP answers ------------------------------------------------------------------
def call(app, accept: str | None = None, *, method: str = "GET", query: str = "",
         encoding: str | None = None, path: str = "/metrics") -> tuple[str, dict, bytes]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "wsgi.input": io.BytesIO()}
    if accept is not None:
        environ["HTTP_ACCEPT"] = accept
    if encoding is not None:
        environ["HTTP_ACCEPT_ENCODING"] = encoding
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.fixture
def apps():
    collector = SnapshotCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    library = make_wsgi_app(registry)
    collector.show(tcp_like_snapshot())
    return make_app(collector.text, library), library


@pytest.mark.parametrize("accept", ACCEPTS)
def test_answers_are_the_library_apps(apps, accept):
    ours, library = apps
    status, headers, body = call(ours, accept)
    assert (status, body) == call(library, accept)[::2]
    assert headers == {**call(library, accept)[1], "Content-Length": str(len(body))}


def test_gzip_when_accepted_decompresses_to_the_same_text(apps):
    ours, library = apps
    status, headers, body = call(ours, ACCEPTS[1], encoding="gzip, deflate")
    expected_status, expected_headers, expected = call(library, ACCEPTS[1], encoding="gzip")
    assert (status, headers["Content-Encoding"], headers["Content-Type"]) == (
        expected_status, "gzip", expected_headers["Content-Type"])
    assert gzip.decompress(body) == gzip.decompress(expected)
    assert headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize("request_", [
    {"method": "OPTIONS"}, {"method": "POST"}, {"path": "/favicon.ico"},
    {"query": "name[]=tcp_sent_bytes_total&name[]=target_info"},
])
def test_everything_else_is_the_library_apps_answer(apps, request_):
    ours, library = apps
    assert call(ours, **request_) == call(library, **request_)


def test_a_real_scrape_with_gzip_through_the_exporter():
    exporter = create_exporter(prometheus_config("prom-text"))
    exporter.start()
    try:
        exporter.export(tcp_like_snapshot(), 1.0)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            f"http://127.0.0.1:{exporter.bound_port}/metrics",
            headers={"Accept": ACCEPTS[1], "Accept-Encoding": "gzip"})
        with opener.open(request, timeout=10) as response:
            body = gzip.decompress(response.read())
            assert response.headers["Content-Encoding"] == "gzip"
    finally:
        exporter.shutdown(2.0)
    assert body == library_text(exporter.collector, ACCEPTS[1])
    assert body.endswith(b"# EOF\n")
