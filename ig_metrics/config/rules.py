"""Checks that involve more than one setting of an exporter (insecure vs TLS,
certificate vs key, plaintext to a remote host, bounds that contradict each
other). Each exporter type lists its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ig_metrics.config.addresses import Endpoint, HostPort, is_loopback
from ig_metrics.config.context import FileContext, Site


@dataclass(slots=True)
class ExporterDraft:
    """An exporter's settings once each field is read, before they become settings."""

    site: Site
    line: int
    values: dict[str, Any]
    lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


Rule = Callable[[ExporterDraft, FileContext], None]


def scheme_decides_insecure(draft: ExporterDraft, ctx: FileContext) -> None:
    """http:// means plaintext and https:// TLS, whatever `insecure` says (as in the
    OpenTelemetry SDK, where https:// forces TLS); a disagreeing `insecure` is ignored."""
    endpoint: Endpoint | None = draft.values.get("endpoint")
    if endpoint is None or endpoint.scheme is None or "insecure" not in draft.values:
        return
    plaintext = endpoint.scheme == "http"
    if "insecure" in draft.lines and draft.values["insecure"] != plaintext:
        ctx.warning(draft.line_of("insecure"),
                    f"{draft.site.child('insecure')}: ignored: the endpoint's "
                    f"{endpoint.scheme}:// scheme means {'plaintext' if plaintext else 'TLS'}")
    draft.values["insecure"] = plaintext


def insecure_excludes_tls(draft: ExporterDraft, ctx: FileContext) -> None:
    if "tls" not in draft.values:
        return
    if "tls" not in draft.lines:
        # From OTEL_EXPORTER_OTLP_*CERTIFICATE: a default, which plaintext overrides.
        if draft.values.get("insecure"):
            del draft.values["tls"]
        return
    if "insecure" in draft.lines and draft.values["insecure"] is True:
        ctx.error(draft.line_of("insecure"),
                  f"{draft.site}: insecure: true turns TLS off, but tls: is set; "
                  "remove one of them")
    elif draft.values.get("insecure"):
        ctx.error(draft.line_of("tls"),
                  f"{draft.site}: tls: is set, but the endpoint's http:// scheme sends "
                  "in plaintext; use https://")


def insecure_only_to_loopback(draft: ExporterDraft, ctx: FileContext) -> None:
    endpoint: Endpoint | None = draft.values.get("endpoint")
    if endpoint and draft.values.get("insecure") and not is_loopback(endpoint.host):
        ctx.warning(draft.line_of("insecure" if "insecure" in draft.lines else "endpoint"),
                    f"{draft.site}: metrics go unencrypted (insecure) to a host that is "
                    "not loopback; use TLS unless the network is trusted")


def client_certificate_with_key(draft: ExporterDraft, ctx: FileContext) -> None:
    tls = draft.values.get("tls", {})
    if ("cert_file" in tls) != ("key_file" in tls):
        missing = "key_file" if "cert_file" in tls else "cert_file"
        ctx.error(draft.line_of("tls"),
                  f"{draft.site.child('tls')}: cert_file and key_file go together "
                  f"(a client certificate and its private key); {missing} is missing")


def retry_waits_grow(draft: ExporterDraft, ctx: FileContext) -> None:
    retry = draft.values.get("retry", {})
    if retry.get("initial", 0) > retry.get("max", float("inf")):
        ctx.error(draft.line_of("retry"),
                  f"{draft.site.child('retry')}: initial ({retry['initial']:g}s) is longer "
                  f"than max ({retry['max']:g}s); waits grow from initial up to max")


def queue_needs_delta(draft: ExporterDraft, ctx: FileContext) -> None:
    if "queue" in draft.lines and draft.values.get("temporality") != "delta":
        ctx.warning(draft.line_of("queue"),
                    f"{draft.site.child('queue')}: ignored: only temporality: delta queues "
                    "intervals; a cumulative export carries the totals, so a failed one "
                    "loses nothing")


def interval_bounds_in_order(draft: ExporterDraft, ctx: FileContext) -> None:
    limits = draft.values.get("limits", {})
    low, high = limits.get("min_interval"), limits.get("max_interval")
    if low is not None and high is not None and low > high:
        ctx.error(draft.line_of("limits"),
                  f"{draft.site.child('limits')}: min_interval ({low:g}s) is longer than "
                  f"max_interval ({high:g}s)")


def passwords_not_in_clear(draft: ExporterDraft, ctx: FileContext) -> None:
    listen: HostPort | None = draft.values.get("listen")
    if (draft.values.get("basic_auth") and "tls" not in draft.values and listen is not None
            and not is_loopback(listen.host)):
        ctx.warning(draft.line_of("basic_auth"),
                    f"{draft.site}: basic_auth without tls: scrapers send their password "
                    "in clear to a listen address that is not loopback; add tls:")


COMMON_RULES: tuple[Rule, ...] = (interval_bounds_in_order,)

OTLP_RULES: tuple[Rule, ...] = (
    scheme_decides_insecure,
    insecure_excludes_tls,
    insecure_only_to_loopback,
    client_certificate_with_key,
    retry_waits_grow,
    queue_needs_delta,
)

PROMETHEUS_RULES: tuple[Rule, ...] = (passwords_not_in_clear,)
