"""Listen addresses and exporter endpoints: parsing, the forms each accepts, and
whether a host is loopback. Errors are ValueError with a message for a person."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

PORT_RANGE = (1, 65535)
ALL_INTERFACES = "0.0.0.0"
WILDCARD_HOSTS = frozenset({ALL_INTERFACES, "::"})
DEFAULT_OTLP_HTTP_PATH = "/v1/metrics"

LISTEN_FORMS = "host:port, [ipv6]:port or :port (all interfaces), e.g. 127.0.0.1:9464"
GRPC_FORMS = "host:port, [ipv6]:port or http(s)://host:port, e.g. localhost:4317"
HTTP_FORMS = "a URL http(s)://host[:port][/path], e.g. http://localhost:4318"
URL_FORMS = "a URL http(s)://host[:port]/path, e.g. http://localhost:9090/api/v1/write"

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
                       r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$")


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str          # without brackets
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An exporter's destination as validated: `url` is what the exporter is given."""

    url: str
    host: str
    port: int | None
    scheme: str | None     # "http" | "https" | None (host:port form)
    has_credentials: bool = False


def parse_port(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"port {text!r} is not a number")
    port = int(text)
    if not PORT_RANGE[0] <= port <= PORT_RANGE[1]:
        raise ValueError(f"port {port} is out of range ({PORT_RANGE[0]}-{PORT_RANGE[1]})")
    return port


def check_host(host: str) -> str:
    if not host:
        raise ValueError("the host is missing")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ValueError(f"{host!r} is not a valid host name or IP address") from None
    return host


def split_host_port(text: str, *, empty_host: str | None = None) -> HostPort:
    """`host:port` or `[v6]:port`; `:port` only when `empty_host` names what it means."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError("an IPv6 address in brackets must be followed by :port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
        return HostPort(host, parse_port(rest[1:]))
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError("the port is missing")
    if ":" in host:
        raise ValueError("write an IPv6 address in brackets, e.g. [::1]:4317")
    if not host:
        if empty_host is None:
            raise ValueError("the host is missing")
        host = empty_host
    return HostPort(check_host(host), parse_port(port))


def parse_listen(text: str) -> HostPort:
    """A Prometheus listen address; `:port` means every interface."""
    if "://" in text:
        raise ValueError("a listen address has no scheme")
    return split_host_port(text.strip(), empty_host=ALL_INTERFACES)


def parse_grpc_endpoint(text: str) -> Endpoint:
    """An OTLP/gRPC endpoint as the OpenTelemetry SDK takes it; kept as written."""
    text = text.strip()
    if "://" not in text:
        address = split_host_port(text)
        return Endpoint(text, address.host, address.port, None)
    parts = _split_url(text)
    if parts.path not in ("", "/"):
        raise ValueError("an OTLP/gRPC endpoint has no path")
    if parts.port is None:
        raise ValueError("the port is missing")
    return Endpoint(text, parts.host, parts.port, parts.scheme, parts.has_credentials)


def parse_http_endpoint(text: str) -> Endpoint:
    """An OTLP/HTTP URL; a missing path becomes /v1/metrics (the OTLP default)."""
    text = text.strip()
    if "://" not in text:
        raise ValueError("the scheme is missing (host:port alone is the otlp-grpc form)")
    parts = _split_url(text)
    url = text
    if parts.path in ("", "/"):
        url = text.rstrip("/") + DEFAULT_OTLP_HTTP_PATH if not parts.query else text
    return Endpoint(url, parts.host, parts.port, parts.scheme, parts.has_credentials)


def parse_url(text: str) -> Endpoint:
    """An http(s):// URL taken as written, path and all (remote write's)."""
    text = text.strip()
    if "://" not in text:
        raise ValueError("the scheme is missing: write http:// or https://")
    parts = _split_url(text)
    if parts.path in ("", "/"):
        raise ValueError("the path is missing (Prometheus takes remote write at "
                         "/api/v1/write)")
    return Endpoint(text, parts.host, parts.port, parts.scheme, parts.has_credentials)


@dataclass(frozen=True, slots=True)
class _UrlParts:
    scheme: str
    host: str
    port: int | None
    path: str
    query: str
    has_credentials: bool


def _split_url(text: str) -> _UrlParts:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the scheme must be http:// or https://, not {parts.scheme}://")
    if parts.fragment:
        raise ValueError("a #fragment has no meaning in an endpoint")
    netloc = parts.netloc.rpartition("@")[2]
    host = parts.hostname or ""
    if netloc.startswith("["):
        inside = netloc[1:].partition("]")[0]
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise ValueError(f"{inside!r} in brackets is not an IPv6 address") from None
    else:
        check_host(netloc.partition(":")[0])
    port_text = netloc.rpartition("]")[2] if netloc.startswith("[") else netloc
    _, colon, port = port_text.partition(":")
    return _UrlParts(
        scheme=parts.scheme,
        host=host,
        port=parse_port(port) if colon else None,
        path=parts.path,
        query=parts.query,
        has_credentials="@" in parts.netloc,
    )


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listeners_collide(first: HostPort, second: HostPort) -> bool:
    """True when both cannot be bound at once (a wildcard takes the port everywhere)."""
    if first.port != second.port:
        return False
    return first.host == second.host or bool({first.host, second.host} & WILDCARD_HOSTS)
