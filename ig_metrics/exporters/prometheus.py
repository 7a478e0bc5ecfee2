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
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ig_metrics.config.model import PrometheusSettings
from ig_metrics.exporters.base import Exporter, ExporterStartError, ExportResult
from ig_metrics.exporters.prometheus_families import empty_family, fill_family, target_info
from ig_metrics.exporters.prometheus_proto import BOTH, ProtobufRenderer
from ig_metrics.exporters.prometheus_text import TextFormat, TextRenderer, gzipped, make_app
from ig_metrics.exporters.webserver import serve
from ig_metrics.exporters import prometheus_naming as naming
from ig_metrics.model.snapshot import MetricData, Snapshot

log = logging.getLogger("ig_metrics.exporters")


class SnapshotCollector(Collector):
    """Renders one snapshot as Prometheus metric families (classic histograms,
    names translated as naming.py says, resource attributes as `target_info`)
    for prometheus_client's encoders, or straight to text (prometheus_text.py)
    for the formats that module writes."""

    def __init__(self, histograms: str = BOTH) -> None:
        self.histograms = histograms       # in the protobuf exposition: classic|native|both
        self._protobuf = ProtobufRenderer()
        self._latest: Snapshot | None = None
        # The families of the last snapshot rendered: several scrapers (an HA
        # pair of Prometheus servers) of one snapshot pay for one rendering.
        self._rendered: tuple[Snapshot, list[Metric]] | None = None
        self._warned: set[str] = set()
        # The text of the last snapshot rendered, per format asked for.
        self._renderer = TextRenderer()
        self._text_lock = threading.Lock()
        self._texts: tuple[Snapshot | None, dict] = (None, {})

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

    def text(self, fmt: TextFormat, compress: bool = False) -> list[bytes] | None:
        """The latest snapshot as scrape text in `fmt` (gzipped if `compress`),
        in pieces; None when the library's encoders must write it (see
        prometheus_text.py). Kept for the other scrapes of the same snapshot
        (an HA pair of Prometheus servers): only in the form asked for."""
        return self._kept(fmt, compress, lambda snapshot: (
            self._renderer.render([], None, fmt) if snapshot is None else
            self._renderer.render(self.served(snapshot), target_info(snapshot), fmt)))

    def protobuf(self, compress: bool = False) -> list[bytes]:
        """The latest snapshot as delimited MetricFamily messages (gzipped if
        `compress`), kept like the text."""
        return self._kept("protobuf", compress, lambda snapshot: (
            [] if snapshot is None else
            self._protobuf.render(snapshot, self.served(snapshot), self.histograms)))

    def _kept(self, form, compress: bool, make) -> list[bytes] | None:
        with self._text_lock:         # one rendering at a time; later scrapers reuse it
            snapshot = self._latest
            if self._texts[0] is not snapshot:
                self._texts = (snapshot, {})
            texts = self._texts[1]
            if (form, compress) not in texts:
                body = texts.get((form, False))
                if body is None:
                    body = make(snapshot)
                texts[form, compress] = gzipped(body) if compress and body is not None else body
            return texts[form, compress]

    def _render(self, snapshot: Snapshot) -> list[Metric]:
        info = target_info(snapshot)
        families = [info] if info is not None else []
        families += [fill_family(family, data) for data, family in self.served(snapshot)]
        return families

    def served(self, snapshot: Snapshot) -> list[tuple[MetricData, Metric]]:
        """Each metric with its family still without samples, less those whose
        family name an earlier metric took (logged once)."""
        served: list[tuple[MetricData, Metric]] = []
        seen: set[str] = set()
        for data in snapshot.metrics:
            family = empty_family(data.info)
            if family.name in seen:
                info = data.info
                self._warn_once(naming.prometheus_metric_name(info.name, info.unit, info.kind),
                                info.name)
                continue
            seen.add(family.name)
            served.append((data, family))
        return served

    def _warn_once(self, family: str, otel_name: str) -> None:
        if family not in self._warned:
            self._warned.add(family)
            log.warning("metric %s is not served: its Prometheus name %s is taken by "
                        "another metric", otel_name, family)


class PrometheusExporter(Exporter[PrometheusSettings]):
    """Serves /metrics from its own registry and HTTP(S) server on `listen`,
    behind basic auth when users are configured."""

    settings_type = PrometheusSettings
    pull = True

    def __init__(self, config) -> None:
        super().__init__(config)
        self.collector = SnapshotCollector(self.settings.histograms)
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
                settings.host, settings.port,
                make_app(self.collector.text, make_wsgi_app(self.registry),
                         self.collector.protobuf),
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
