"""The one table of what a profiles file may hold: the settings of each exporter
type and of a profile. The validator, the JSON Schema and the docs test all read
it; adding an exporter type is adding one entry to EXPORTER_TYPES."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ig_metrics.config.addresses import HostPort
from ig_metrics.catalog.attributenames import AttributeNamesKind
from ig_metrics.config.fieldkinds import (
    GRPC_ENDPOINT, HTTP_ENDPOINT, LISTEN_ADDRESS, AddressKind, Choice, DurationKind,
    FilePathKind, FlagKind, NameList, StringMap, TextKind,
)
from ig_metrics.config.basicauth import BcryptUsersKind
from ig_metrics.config.fields import EnvVar, Field, Section
from ig_metrics.config.model import (
    DEFAULT_SAMPLER_MAX_SERIES, DEFAULT_EXPORT_SHARE, DEFAULT_INTERVAL, DEFAULT_MAX_INTERVAL_FACTOR, DEFAULT_OTLP_TIMEOUT,
    DEFAULT_POINTS_PER_EXPORT, DEFAULT_PROMETHEUS_LISTEN, DEFAULT_QUEUE_BATCHES,
    DEFAULT_QUEUE_BYTES, DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX, ConsoleSettings,
    ExporterSettings, LimitSettings, OtlpSettings, PrometheusSettings, QueueSettings,
    RetrySettings, ServerTlsSettings, TlsSettings,
)
from ig_metrics.config.otelenv import (
    HTTP_BASE_URL, HeaderListKind, MillisecondsKind, TemporalityPreferenceKind, otel_variables,
)
from ig_metrics.config.quantities import CountMap, DirectoryKind, IntKind, ShareKind, SizeKind
from ig_metrics.config.rules import COMMON_RULES, OTLP_RULES, PROMETHEUS_RULES, Rule

NAME_PATTERN = r"[a-z0-9][a-z0-9._-]*"
NAME_RULE = ("names use lowercase letters, digits, '.', '_' and '-', and start with a "
             "letter or a digit")
HEADER_NAME_PATTERN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"


@dataclass(frozen=True)
class ExporterType:
    """One `type:` of exporter: its settings and how they become a settings object."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    build: Callable[[Mapping[str, Any]], ExporterSettings]
    rules: tuple[Rule, ...] = ()
    address_key: str | None = None    # the setting `exporters list` shows as the address
    fixed_address: str = ""           # shown instead when there is no such setting


def interval_field(scope: str) -> Field:
    return Field(
        "interval", DurationKind(),
        f"How often {scope} exported. An exporter's own interval wins over its profile's, "
        f"`run --interval` wins over both, and the default is "
        f"{DEFAULT_INTERVAL:g}s.",
        "15s")


def description_field(what: str) -> Field:
    return Field("description", TextKind(),
                 f"What this {what} is for, in a sentence; `exporters list` shows it.",
                 "Scrape on this host")


def env(*names: str, kind=None) -> tuple[EnvVar, ...]:
    return tuple(EnvVar(name, kind) for name in names)


def limits_field(push: bool) -> Field:
    per_request = (Field(
        "max_points_per_export", IntKind(1),
        "Data points per request: a larger export goes out as several requests (a "
        "default collector refuses a gRPC message over 4 MiB; 1000 points of the tcp "
        "gadget make about 1.2 MB).",
        1000, default=DEFAULT_POINTS_PER_EXPORT, default_shown=DEFAULT_POINTS_PER_EXPORT),
    ) if push else ()
    section = Section((
        Field("max_series", IntKind(2),
              "The most series one metric may export, the overflow series included: "
              "the series first seen are kept, later ones are folded into one series "
              "with the attribute otel.metric.overflow=true and counted in "
              "ig_metrics.export.points.dropped (reason overflow). Default: no limit.",
              2000),
        Field("max_series_by_metric", CountMap(2),
              "max_series for the metrics named here, overriding max_series.",
              {"tcp.sent": 10000}, default=(), default_shown={}),
        *per_request,
        Field("min_interval", DurationKind(),
              "The interval is never shorter than this, whatever the profile or "
              "`run --interval` ask (a warning says so at start).",
              "5s"),
        Field("max_interval", DurationKind(),
              "The widest that load may make the interval. Default: "
              f"{DEFAULT_MAX_INTERVAL_FACTOR} times the interval.",
              "2m"),
        Field("max_export_share", ShareKind(),
              "When one export takes more than this share of the interval, or the "
              "sampler's reading of the kernel overruns its own, the interval doubles, "
              "step by step up to max_interval; it narrows back, step by step, once "
              "exports take less than a quarter of that share. Each change is logged.",
              "50%", default=DEFAULT_EXPORT_SHARE,
              default_shown=f"{DEFAULT_EXPORT_SHARE * 100:g}%"),
    ), owner="limits")
    return Field("limits", section,
                 "Quotas of this exporter: series per metric, points per request, the "
                 "interval's floor and how far load may widen it.",
                 {"max_series": 2000, "min_interval": "5s"})


def retry_field() -> Field:
    return Field("retry", Section((
        Field("initial", DurationKind(),
              "The wait before the first retry; each further wait doubles, up to max, "
              "with a random jitter of -50%..+0%, so that many nodes do not retry in step.",
              "1s", default=DEFAULT_RETRY_INITIAL, default_shown=f"{DEFAULT_RETRY_INITIAL:g}s"),
        Field("max", DurationKind(),
              "The longest wait between two attempts (also the longest gRPC waits "
              "before it reconnects).",
              "30s", default=DEFAULT_RETRY_MAX, default_shown=f"{DEFAULT_RETRY_MAX:g}s"),
        Field("max_elapsed", DurationKind(),
              "How long after it was read a delta batch is still retried; then it is "
              "given up and counted as dropped (reason expired). Default: no limit (the "
              "queue's bounds apply). A cumulative exporter always sends its newest "
              "totals, so there is nothing to give up.",
              "1h"),
    ), owner="retry"),
        "How a failed export is retried: UNAVAILABLE, DEADLINE_EXCEEDED, "
        "RESOURCE_EXHAUSTED, HTTP 429/502/503/504 and connection errors are retried "
        "with exponential backoff (a collector's Retry-After or RetryInfo is honoured); "
        "other refusals (bad request, unauthenticated...) are logged once and not retried.",
        {"initial": "1s", "max": "30s"})


def queue_field() -> Field:
    return Field("queue", Section((
        Field("max_batches", IntKind(1),
              "The most intervals kept while the collector cannot be reached; then the "
              "oldest is dropped and counted (reason queue_full).",
              360, default=DEFAULT_QUEUE_BATCHES, default_shown=DEFAULT_QUEUE_BATCHES),
        Field("max_bytes", SizeKind(),
              "The most bytes (encoded OTLP) those intervals may take; then the oldest "
              "is dropped and counted (reason queue_full).",
              "64MiB", default=DEFAULT_QUEUE_BYTES, default_shown="64MiB"),
        Field("dir", DirectoryKind(),
              "Keep the queue in this directory (a subdirectory per exporter, created if "
              "missing) so that an ig-metrics restarted during an outage still delivers "
              "it; relative to this YAML file. Default: in memory only.",
              "/var/lib/ig-metrics/queue"),
    ), owner="queue"),
        "With temporality: delta, the intervals not delivered yet, sent oldest first "
        "once the collector is back.",
        {"max_batches": 360, "dir": "/var/lib/ig-metrics/queue"})


def otlp_fields(endpoint: AddressKind, endpoint_doc: str, endpoint_example: str,
                grpc: bool) -> tuple[Field, ...]:
    tls = Section((
        Field("ca_file", FilePathKind(),
              "CA certificate (PEM) that the collector's certificate must chain to.",
              "/etc/ig-metrics/ca.pem", env=env(*otel_variables("CERTIFICATE"))),
        Field("cert_file", FilePathKind(),
              "Client certificate (PEM) for mutual TLS; needs key_file.",
              "/etc/ig-metrics/client.pem", env=env(*otel_variables("CLIENT_CERTIFICATE"))),
        Field("key_file", FilePathKind(),
              "Private key (PEM) of cert_file; needs cert_file.",
              "/etc/ig-metrics/client-key.pem", env=env(*otel_variables("CLIENT_KEY"))),
    ), owner="tls")
    metrics_endpoint, generic_endpoint = otel_variables("ENDPOINT")
    endpoint_env = (EnvVar(metrics_endpoint),
                    EnvVar(generic_endpoint, None if grpc else HTTP_BASE_URL))
    insecure_env = env(*otel_variables("INSECURE")) if grpc else ()
    return (
        Field("endpoint", endpoint, endpoint_doc, endpoint_example, required=True,
              env=endpoint_env),
        Field("insecure", FlagKind(),
              "Send in plaintext, without TLS; not together with tls:. An http:// or "
              "https:// endpoint decides by its scheme instead (a contradicting insecure "
              "is ignored with a warning).",
              True, default=False, default_shown=False, env=insecure_env),
        Field("tls", tls,
              "TLS files; relative paths are relative to this YAML file's directory.",
              {"ca_file": "ca.pem"}),
        Field("headers", StringMap(HEADER_NAME_PATTERN, "header names are HTTP tokens",
                                   secret_values=True, lowercase_keys=grpc),
              ("gRPC metadata sent with every export; names in lowercase. "
               if grpc else "HTTP headers sent with every export. ")
              + "ig-metrics never shows their values.",
              {"x-tenant": "${env:IG_TENANT}"}, default=(), default_shown={},
              env=env(*otel_variables("HEADERS"), kind=HeaderListKind(lowercase=grpc))),
        Field("timeout", DurationKind(),
              "The longest one attempt (one request) may take; then it counts as failed "
              "and is retried as retry: says.",
              "5s", default=DEFAULT_OTLP_TIMEOUT, default_shown=f"{DEFAULT_OTLP_TIMEOUT:g}s",
              env=env(*otel_variables("TIMEOUT"), kind=MillisecondsKind())),
        Field("compression", Choice(("gzip", "none")), "Compression of each export.",
              "gzip", default="none", default_shown="none",
              env=env(*otel_variables("COMPRESSION"))),
        Field("temporality", Choice(("cumulative", "delta")),
              "cumulative: totals since the start (what Prometheus-style back ends "
              "expect); delta: the change since the previous export.",
              "cumulative", default="cumulative", default_shown="cumulative",
              env=env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                      kind=TemporalityPreferenceKind())),
        Field("histograms", Choice(("explicit", "exponential")),
              "explicit: Histograms with the kernel's bucket bounds; exponential: "
              "ExponentialHistograms of scale 0, the kernel's log2 slots as they are "
              "(docs/exporters.md, \"Native and exponential histograms\").",
              "exponential", default="explicit", default_shown="explicit"),
        retry_field(),
        queue_field(),
        limits_field(push=True),
    )


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
        Field("histograms", Choice(("classic", "native", "both")),
              "What a scraper that asks for the protobuf exposition (a Prometheus with "
              "native histograms on) gets: classic buckets, native histograms of schema "
              "0 (the kernel's log2 slots), or both in one message. Text scrapers always "
              "get classic buckets.",
              "native", default="both", default_shown="both"),
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


def build_limits(values: Mapping[str, Any]) -> LimitSettings:
    return LimitSettings(**values.get("limits", {}))


def build_otlp(values: Mapping[str, Any]) -> OtlpSettings:
    return OtlpSettings(
        endpoint=values["endpoint"].url,
        insecure=values["insecure"],
        tls=TlsSettings(**values.get("tls", {})),
        headers=values["headers"],
        timeout=values["timeout"],
        compression=values["compression"],
        temporality=values["temporality"],
        histograms=values["histograms"],
        retry=RetrySettings(**values.get("retry", {})),
        queue=QueueSettings(**values.get("queue", {})),
        limits=build_limits(values),
    )


def build_console(values: Mapping[str, Any]) -> ConsoleSettings:
    return ConsoleSettings(format=values["format"], limits=build_limits(values))


_DEFAULT_LISTEN = HostPort(*DEFAULT_PROMETHEUS_LISTEN)
# bcrypt("scrape-me"), a real hash so that examples validate.
EXAMPLE_BCRYPT_HASH = "$2b$10$GtxjFJ/UsgGYYvOEgtzH1OYYI5vydIcZv/VDhtOg6RW.NTuZosJci"

EXPORTER_TYPES: dict[str, ExporterType] = {t.name: t for t in (
    ExporterType(
        "prometheus", "An HTTP endpoint that Prometheus scrapes (pull).",
        prometheus_fields(), build_prometheus, COMMON_RULES + PROMETHEUS_RULES,
        address_key="listen"),
    ExporterType(
        "otlp-grpc", "Pushes OTLP over gRPC to a collector.",
        otlp_fields(GRPC_ENDPOINT,
                    "The collector: host:port, [ipv6]:port or http(s)://host:port. "
                    "host:port uses TLS unless insecure: true.",
                    "otel-collector.observability.svc:4317", grpc=True),
        build_otlp, COMMON_RULES + OTLP_RULES, address_key="endpoint"),
    ExporterType(
        "otlp-http", "Pushes OTLP over HTTP (protobuf) to a collector.",
        otlp_fields(HTTP_ENDPOINT,
                    "The collector's URL: http(s)://host[:port][/path]; without a path, "
                    "/v1/metrics is appended.",
                    "http://localhost:4318", grpc=False),
        build_otlp, COMMON_RULES + OTLP_RULES, address_key="endpoint"),
    ExporterType(
        "console", "Prints every export on standard output (for debugging).",
        (Field("format", Choice(("text", "json")), "text for people, json for tools.",
               "text", default="text", default_shown="text"),
         limits_field(push=False)),
        build_console, COMMON_RULES, fixed_address="stdout"),
)}

TYPE_FIELD = Field("type", Choice(tuple(EXPORTER_TYPES), noun="exporter type"),
                   "The kind of exporter: " + ", ".join(EXPORTER_TYPES) + ".",
                   "otlp-grpc", required=True)
COMMON_EXPORTER_FIELDS = (TYPE_FIELD, interval_field("this exporter's metrics are"),
                          description_field("exporter"))

PROFILE_FIELDS = (
    Field("exporters", NameList("exporter", "[prom-local, central]"),
          "The exporter templates this profile runs, by name, from any file.",
          ["prom-local"], required=True),
    interval_field("metrics are"),
    description_field("profile"),
    Field("sampler", Section((
        Field("max_series", IntKind(2),
              "The most series the sampler keeps apart (about 1.2 KB of memory each); "
              "kernel keys seen once it is reached are summed into one series with "
              "the attribute otel.metric.overflow=true, for as long as they live.",
              100000, default=DEFAULT_SAMPLER_MAX_SERIES,
              default_shown=DEFAULT_SAMPLER_MAX_SERIES),
    ), owner="sampler"),
          "The sampler's memory budget.", {"max_series": 100000}),
    Field("attributes", Section((
        Field("include", AttributeNamesKind(),
              "Keep only these attributes on every series (a name ending in * keeps "
              "every attribute with that prefix, e.g. k8s.*); series that become alike "
              "are summed, exactly. Default: every attribute.",
              ["process.command", "container.id", "k8s.*"], default=(), default_shown=[]),
        Field("exclude", AttributeNamesKind(),
              "Drop these attributes from every series ('*' at the end: a prefix), "
              "after include; series that become alike are summed, exactly. Names "
              "no built-in gadget has are warned about, and refused by `run` when "
              "the gadget run has none of them either.",
              ["process.pid"], default=(), default_shown=[]),
        Field("pod_labels", FlagKind(),
              "Add each pod's labels as k8s.pod.label.<key> (needs the Kubernetes API, "
              "see docs/kubernetes.md). Off by default: every label value multiplies "
              "the series of its pods.",
              True, default=False, default_shown=False),
    ), owner="attributes"),
          "Which attributes the series carry: the cardinality knob.",
          {"exclude": ["process.pid"]}),
)


def exporter_fields(type_name: str) -> tuple[Field, ...]:
    return COMMON_EXPORTER_FIELDS + EXPORTER_TYPES[type_name].fields

SECTION_DOCS = {
    "exporters": "Named exporter templates. A name is unique across all files.",
    "profiles": "Named selections of exporter templates; `run --profile NAME` picks one.",
}
