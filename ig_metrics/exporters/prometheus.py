"""The prometheus exporter: serves the latest snapshot on its own `listen`
address from its own registry; a scrape renders what `export` last handed over
and never touches the kernel."""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily, Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ig_metrics.config.model import PrometheusSettings
from ig_metrics.exporters.base import Exporter, ExporterStartError, ExportResult
from ig_metrics.exporters.webserver import serve
from ig_metrics.pipeline import naming
from ig_metrics.pipeline.snapshot import (
    COUNTER, GAUGE, HISTOGRAM, HistogramValue, MetricData, Snapshot,
)

log = logging.getLogger("ig_metrics.exporters")

TARGET_INFO_HELP = "Target metadata"


class SnapshotCollector(Collector):
    """Renders one snapshot as Prometheus metric families (classic histograms,
    names translated as naming.py says, resource attributes as `target_info`)."""

    def __init__(self) -> None:
        self._latest: Snapshot | None = None
        # The families of the last snapshot rendered: several scrapers (an HA
        # pair of Prometheus servers) of one snapshot pay for one rendering.
        self._rendered: tuple[Snapshot, list[Metric]] | None = None
        self._warned: set[str] = set()

    def show(self, snapshot: Snapshot) -> None:
        self._latest = snapshot       # one reference swap: scrapes see old or new, whole

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest
        if snapshot is None:
            return iter(())
        rendered = self._rendered
        if rendered is None or rendered[0] is not snapshot:
            rendered = (snapshot, self._render(snapshot))
            self._rendered = rendered
        return iter(rendered[1])

    def _render(self, snapshot: Snapshot) -> list[Metric]:
        families: list[Metric] = []
        if snapshot.resource:
            labels = {naming.label_name(key): naming.label_value(value)
                      for key, value in snapshot.resource}
            families.append(InfoMetricFamily("target", TARGET_INFO_HELP, value=labels))
        seen: set[str] = set()
        for data in snapshot.metrics:
            family = render_family(data)
            if family.name in seen:
                info = data.info
                self._warn_once(naming.prometheus_metric_name(info.name, info.unit, info.kind),
                                info.name)
                continue
            seen.add(family.name)
            families.append(family)
        return families

    def _warn_once(self, family: str, otel_name: str) -> None:
        if family not in self._warned:
            self._warned.add(family)
            log.warning("metric %s is not served: its Prometheus name %s is taken by "
                        "another metric", otel_name, family)


def render_family(data: MetricData) -> Metric:
    """One metric family; series may differ in attribute names (an overflow
    series, for instance), so labels are built per series."""
    info = data.info
    name = naming.prometheus_metric_name(info.name, info.unit, info.kind)
    help_text = info.description or f"OpenTelemetry metric {info.name}"
    family_name = name.removesuffix("_total") if info.kind == COUNTER else name
    unit = naming.unit_suffix(info.unit, info.kind)
    unit = unit if unit and family_name.endswith(f"_{unit}") else ""
    le_values = [floatToGoString(bound) for bound in info.bounds]
    if info.kind == COUNTER:
        family: Metric = CounterMetricFamily(name, help_text, unit=unit)
    elif info.kind == GAUGE:
        family = GaugeMetricFamily(name, help_text, unit=unit)
    elif info.kind == HISTOGRAM:
        family = HistogramMetricFamily(name, help_text, unit=unit)
    else:
        raise ValueError(f"metric {info.name}: unknown kind {info.kind!r}")
    samples = family.samples
    for point in data.points:
        plan = naming.label_plan(tuple(key for key, _ in point.attributes))
        labels = dict(zip(plan.names, plan.values(point.attributes)))
        value = point.value
        if not isinstance(value, HistogramValue):
            samples.append(Sample(name, labels, value))
            continue
        if len(value.counts) != len(le_values) + 1:
            raise ValueError(f"metric {info.name}: {len(value.counts)} bucket counts for "
                             f"{len(le_values)} bounds")
        # Prometheus buckets count everything <= le, ours one bucket each; bounds
        # are upper-inclusive on both sides, so a value on a bound stays in it.
        running = 0
        for le, count in zip(le_values, value.counts):
            running += count
            samples.append(Sample(f"{name}_bucket", {**labels, "le": le}, running))
        samples.append(Sample(f"{name}_bucket", {**labels, "le": "+Inf"}, value.count))
        samples.append(Sample(f"{name}_count", labels, value.count))
        samples.append(Sample(f"{name}_sum", labels, value.sum))
    return family


class PrometheusExporter(Exporter[PrometheusSettings]):
    """Serves /metrics from its own registry and HTTP(S) server on `listen`,
    behind basic auth when users are configured."""

    settings_type = PrometheusSettings
    pull = True

    def __init__(self, config) -> None:
        super().__init__(config)
        self.collector = SnapshotCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def target(self) -> str:
        return self.shown("listen", self.settings.listen)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (differs from the setting when it is 0)."""
        if self._server is None:
            raise RuntimeError(f"exporter {self.name} is not started")
        return self._server.server_address[1]

    @property
    def scheme(self) -> str:
        return "https" if self.settings.tls is not None else "http"

    def start(self) -> None:
        settings = self.settings
        try:
            self._server, self._thread = serve(
                settings.host, settings.port, make_wsgi_app(self.registry),
                tls=settings.tls, users=settings.basic_auth)
        except ssl.SSLError as error:
            raise ExporterStartError(
                f"exporter {self.name}: cannot serve TLS with tls.cert_file and "
                f"tls.key_file: {error.reason or error} — fix them in "
                f"{self.where_configured()}") from error
        except OSError as error:
            raise ExporterStartError(self._listen_error(error)) from error
        log.debug("exporter %s: serving /metrics on %s://%s", self.name, self.scheme,
                  self.target)

    def _listen_error(self, error: OSError) -> str:
        prefix = f"exporter {self.name}: cannot listen on {self.target}"
        where = self.where_configured()
        if isinstance(error, socket.gaierror):
            return f"{prefix}: the host name does not resolve — change `listen` in {where}"
        if error.errno == errno.EADDRINUSE:
            return (f"{prefix}: address already in use; another ig-metrics or exporter "
                    f"may be running — change `listen` in {where}")
        if error.errno == errno.EADDRNOTAVAIL:
            return (f"{prefix}: no interface of this host has that address — change "
                    f"`listen` in {where}")
        if error.errno == errno.EACCES:
            return (f"{prefix}: permission denied (ports below 1024 need root) — change "
                    f"`listen` in {where}")
        return f"{prefix}: {error.strerror or error} — check `listen` in {where}"

    def deliver(self, snapshot: Snapshot, timeout: float) -> ExportResult:
        self.collector.show(snapshot)
        self.stats.points_exported += snapshot.series_count
        return ExportResult.SUCCESS

    def shutdown(self, timeout: float) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()          # returns once serve_forever has noticed (<0.5 s)
        server.server_close()
        if thread is not None:
            thread.join(timeout)
