"""Checks that involve more than one setting of an exporter (insecure vs TLS,
certificate vs key, plaintext to a remote host). Each exporter type lists its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ig_metrics.config.addresses import Endpoint, is_loopback
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


OTLP_RULES: tuple[Rule, ...] = (
    scheme_decides_insecure,
    insecure_excludes_tls,
    insecure_only_to_loopback,
    client_certificate_with_key,
)
