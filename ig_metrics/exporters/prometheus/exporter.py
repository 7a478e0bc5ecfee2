"""The prometheus exporter: serves the latest snapshot on its own `listen`
address from its own registry; a scrape renders what `export` last handed over
and never touches the kernel."""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ig_metrics.config.addresses import HostPort, is_loopback
from ig_metrics.config.context import FileContext
from ig_metrics.config.fieldkinds import LISTEN_ADDRESS, Choice, FilePathKind
from ig_metrics.config.fields import Field, Section
from ig_metrics.config.model import LimitSettings, ResolvedExporter
from ig_metrics.config.rules import COMMON_RULES, ExporterDraft, Rule
from ig_metrics.config.sections import build_limits, limits_field
from ig_metrics.exporters.base import Exporter, ExporterStartError, ExporterType, ExportResult
from ig_metrics.exporters.prometheus import naming
from ig_metrics.exporters.prometheus.basicauth import BcryptUsersKind
from ig_metrics.exporters.prometheus.families import empty_family, fill_family, target_info
from ig_metrics.exporters.prometheus.proto import BOTH, CLASSIC, NATIVE, ProtobufRenderer
from ig_metrics.exporters.prometheus.text import TextFormat, TextRenderer, gzipped, make_app
from ig_metrics.exporters.prometheus.webserver import ServerTlsSettings, serve
from ig_metrics.model.snapshot import MetricData, Snapshot

log = logging.getLogger("ig_metrics.exporters")

DEFAULT_PROMETHEUS_LISTEN = ("127.0.0.1", 9464)


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    host: str = DEFAULT_PROMETHEUS_LISTEN[0]
    port: int = DEFAULT_PROMETHEUS_LISTEN[1]
    tls: ServerTlsSettings | None = None
    # user name -> bcrypt hash of the password, as Prometheus' basic_auth_users
    basic_auth: tuple[tuple[str, str], ...] = ()
    histograms: str = BOTH                 # protobuf scrapes: classic | native | both
    limits: LimitSettings = field(default_factory=LimitSettings)

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {"listen": self.listen}
        if self.tls is not None:
            written["tls"] = self.tls.as_written()
        if self.basic_auth:
            written["basic_auth"] = dict(self.basic_auth)
        written["histograms"] = self.histograms
        written["limits"] = self.limits.as_written()
        return written

_DEFAULT_LISTEN = HostPort(*DEFAULT_PROMETHEUS_LISTEN)

# bcrypt("scrape-me"), a real hash so that examples validate.
EXAMPLE_BCRYPT_HASH = "$2b$10$GtxjFJ/UsgGYYvOEgtzH1OYYI5vydIcZv/VDhtOg6RW.NTuZosJci"


def prometheus_fields() -> tuple[Field, ...]:
    tls = Section((
        Field("cert_file", FilePathKind(), "Server certificate (PEM) of the endpoint.",
              "/etc/ig-metrics/server.pem", required=True),
        Field("key_file", FilePathKind(), "Private key (PEM) of cert_file.",
              "/etc/ig-metrics/server-key.pem", required=True),
        Field("client_ca_file", FilePathKind(),
              "CA (PEM) that scrapers' client certificates must chain to; when set, a "
              "scraper without one is refused (mutual TLS).",
              "/etc/ig-metrics/scrapers-ca.pem"),
    ), owner="prometheus tls")
    return (
        Field("listen", LISTEN_ADDRESS,
              "Address and port to serve /metrics on: host:port, [ipv6]:port, or :port "
              "for every interface.",
              "127.0.0.1:9464", default=_DEFAULT_LISTEN, default_shown=str(_DEFAULT_LISTEN)),
        Field("tls", tls,
              "Serve /metrics over HTTPS, as Prometheus' own tls_server_config; relative "
              "paths are relative to this YAML file's directory.",
              {"cert_file": "server.pem", "key_file": "server-key.pem"}),
        Field("basic_auth", BcryptUsersKind(),
              "Users allowed to scrape, each with the bcrypt hash of its password, as "
              "Prometheus' own basic_auth_users; a scrape without a valid user gets "
              "401. ig-metrics never shows the hashes.",
              {"prometheus": EXAMPLE_BCRYPT_HASH}, default=(), default_shown={}),
        Field("histograms", Choice((CLASSIC, NATIVE, BOTH)),
              "What a scraper that asks for the protobuf exposition (a Prometheus with "
              "native histograms on) gets: classic buckets, native histograms of schema "
              "0 (the kernel's log2 slots), or both in one message. Text scrapers always "
              "get classic buckets.",
              NATIVE, default=BOTH, default_shown=BOTH),
        limits_field(push=False),
    )


def build_prometheus(values: Mapping[str, Any]) -> PrometheusSettings:
    listen: HostPort = values["listen"]
    tls = values.get("tls")
    return PrometheusSettings(host=listen.host, port=listen.port,
                              tls=ServerTlsSettings(**tls) if tls else None,
                              basic_auth=values["basic_auth"],
                              histograms=values["histograms"],
                              limits=build_limits(values))


def passwords_not_in_clear(draft: ExporterDraft, ctx: FileContext) -> None:
    listen: HostPort | None = draft.values.get("listen")
    if (draft.values.get("basic_auth") and "tls" not in draft.values and listen is not None
            and not is_loopback(listen.host)):
        ctx.warning(draft.line_of("basic_auth"),
                    f"{draft.site}: basic_auth without tls: scrapers send their password "
                    "in clear to a listen address that is not loopback; add tls:")

PROMETHEUS_RULES: tuple[Rule, ...] = (passwords_not_in_clear,)


class SnapshotCollector(Collector):
    """Renders one snapshot as Prometheus metric families (classic histograms,
    names translated as naming.py says, resource attributes as `target_info`)
    for prometheus_client's encoders, or straight to text (text.py)
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
        self._texts: tuple[Snapshot | None, dict[tuple[TextFormat | str, bool],
                                                  list[bytes] | None]] = (None, {})

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
        text.py). Kept for the other scrapes of the same snapshot
        (an HA pair of Prometheus servers): only in the form asked for."""
        return self._kept(fmt, compress, lambda snapshot: (
            self._renderer.render([], None, fmt) if snapshot is None else
            self._renderer.render(self.served(snapshot), target_info(snapshot), fmt)))

    def protobuf(self, compress: bool = False) -> list[bytes]:
        """The latest snapshot as delimited MetricFamily messages (gzipped if
        `compress`), kept like the text."""
        body = self._kept("protobuf", compress, lambda snapshot: (
            [] if snapshot is None else
            self._protobuf.render(snapshot, self.served(snapshot), self.histograms)))
        assert body is not None          # the library never writes this one: see text()
        return body

    def _kept(self, form: TextFormat | str, compress: bool,
              make: Callable[[Snapshot | None], list[bytes] | None]) -> list[bytes] | None:
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

    def __init__(self, config: ResolvedExporter) -> None:
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
                         self.collector.protobuf, scraped=self.stats.pulled),
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
        self.stats.points_exported += snapshot.point_count
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


TYPE = ExporterType(
    "prometheus", "An HTTP endpoint that Prometheus scrapes (pull).",
    prometheus_fields(), build_prometheus, PrometheusExporter,
    COMMON_RULES + PROMETHEUS_RULES, address_key="listen")
