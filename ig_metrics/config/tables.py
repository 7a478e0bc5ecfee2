"""The one table of what a profiles file may hold: the settings of each exporter
type and of a profile. The validator, the JSON Schema and the docs test all read
it; adding an exporter type is adding one entry to EXPORTER_TYPES."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ig_metrics.config.addresses import HostPort
from ig_metrics.config.fieldkinds import (
    GRPC_ENDPOINT, HTTP_ENDPOINT, LISTEN_ADDRESS, AddressKind, Choice, DurationKind,
    FilePathKind, FlagKind, NameList, StringMap, TextKind,
)
from ig_metrics.config.fields import Field, Section
from ig_metrics.config.model import (
    DEFAULT_INTERVAL, DEFAULT_OTLP_TIMEOUT, DEFAULT_PROMETHEUS_LISTEN, ConsoleSettings,
    ExporterSettings, OtlpSettings, PrometheusSettings, TlsSettings,
)
from ig_metrics.config.rules import OTLP_RULES, Rule

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


def otlp_fields(endpoint: AddressKind, endpoint_doc: str, endpoint_example: str,
                grpc: bool) -> tuple[Field, ...]:
    tls = Section((
        Field("ca_file", FilePathKind(),
              "CA certificate (PEM) that the collector's certificate must chain to.",
              "/etc/ig-metrics/ca.pem"),
        Field("cert_file", FilePathKind(),
              "Client certificate (PEM) for mutual TLS; needs key_file.",
              "/etc/ig-metrics/client.pem"),
        Field("key_file", FilePathKind(),
              "Private key (PEM) of cert_file; needs cert_file.",
              "/etc/ig-metrics/client-key.pem"),
    ), owner="tls")
    return (
        Field("endpoint", endpoint, endpoint_doc, endpoint_example, required=True),
        Field("insecure", FlagKind(),
              "Send in plaintext, without TLS; not together with tls:. An http:// or "
              "https:// endpoint decides by its scheme instead (a contradicting insecure "
              "is ignored with a warning).",
              True, default=False, default_shown=False),
        Field("tls", tls,
              "TLS files; relative paths are relative to this YAML file's directory.",
              {"ca_file": "ca.pem"}),
        Field("headers", StringMap(HEADER_NAME_PATTERN, "header names are HTTP tokens",
                                   secret_values=True, lowercase_keys=grpc),
              ("gRPC metadata sent with every export; names in lowercase. "
               if grpc else "HTTP headers sent with every export. ")
              + "ig-metrics never shows their values.",
              {"x-tenant": "${env:IG_TENANT}"}, default=(), default_shown={}),
        Field("timeout", DurationKind(),
              "The longest one export may take, retries included; then it is dropped.",
              "5s", default=DEFAULT_OTLP_TIMEOUT, default_shown=f"{DEFAULT_OTLP_TIMEOUT:g}s"),
        Field("compression", Choice(("gzip", "none")), "Compression of each export.",
              "gzip", default="none", default_shown="none"),
        Field("temporality", Choice(("cumulative", "delta")),
              "cumulative: totals since the start (what Prometheus-style back ends "
              "expect); delta: the change since the previous export.",
              "cumulative", default="cumulative", default_shown="cumulative"),
    )


def build_prometheus(values: Mapping[str, Any]) -> PrometheusSettings:
    listen: HostPort = values["listen"]
    return PrometheusSettings(host=listen.host, port=listen.port)


def build_otlp(values: Mapping[str, Any]) -> OtlpSettings:
    return OtlpSettings(
        endpoint=values["endpoint"].url,
        insecure=values["insecure"],
        tls=TlsSettings(**values.get("tls", {})),
        headers=values["headers"],
        timeout=values["timeout"],
        compression=values["compression"],
        temporality=values["temporality"],
    )


def build_console(values: Mapping[str, Any]) -> ConsoleSettings:
    return ConsoleSettings(format=values["format"])


_DEFAULT_LISTEN = HostPort(*DEFAULT_PROMETHEUS_LISTEN)

EXPORTER_TYPES: dict[str, ExporterType] = {t.name: t for t in (
    ExporterType(
        "prometheus", "An HTTP endpoint that Prometheus scrapes (pull).",
        (Field("listen", LISTEN_ADDRESS,
               "Address and port to serve /metrics on: host:port, [ipv6]:port, or :port "
               "for every interface.",
               "127.0.0.1:9464", default=_DEFAULT_LISTEN, default_shown=str(_DEFAULT_LISTEN)),),
        build_prometheus, address_key="listen"),
    ExporterType(
        "otlp-grpc", "Pushes OTLP over gRPC to a collector.",
        otlp_fields(GRPC_ENDPOINT,
                    "The collector: host:port, [ipv6]:port or http(s)://host:port. "
                    "host:port uses TLS unless insecure: true.",
                    "otel-collector.observability.svc:4317", grpc=True),
        build_otlp, OTLP_RULES, address_key="endpoint"),
    ExporterType(
        "otlp-http", "Pushes OTLP over HTTP (protobuf) to a collector.",
        otlp_fields(HTTP_ENDPOINT,
                    "The collector's URL: http(s)://host[:port][/path]; without a path, "
                    "/v1/metrics is appended.",
                    "http://localhost:4318", grpc=False),
        build_otlp, OTLP_RULES, address_key="endpoint"),
    ExporterType(
        "console", "Prints every export on standard output (for debugging).",
        (Field("format", Choice(("text", "json")), "text for people, json for tools.",
               "text", default="text", default_shown="text"),),
        build_console, fixed_address="stdout"),
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
)


def exporter_fields(type_name: str) -> tuple[Field, ...]:
    return COMMON_EXPORTER_FIELDS + EXPORTER_TYPES[type_name].fields

SECTION_DOCS = {
    "exporters": "Named exporter templates. A name is unique across all files.",
    "profiles": "Named selections of exporter templates; `run --profile NAME` picks one.",
}
