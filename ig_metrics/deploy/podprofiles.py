"""The profiles directory as the DaemonSet will read it: validated with the
pod's environment, the chosen profile's Prometheus endpoints moved off loopback
(a pod is scraped on its own IP), and what else will not work in a pod said."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import yaml

from ig_metrics.config import ConfigError, Profile
from ig_metrics.config.addresses import (
    ALL_INTERFACES,
    WILDCARD_HOSTS,
    Endpoint,
    is_loopback,
    parse_grpc_endpoint,
    parse_http_endpoint,
)
from ig_metrics.config.model import ResolvedExporter
from ig_metrics.config.yamlnodes import BoundedLoader

if TYPE_CHECKING:       # the exporter types come with the catalog: see pod_profiles
    from ig_metrics.exporters.otlp.common import OtlpSettings
    from ig_metrics.exporters.prometheus.exporter import PrometheusSettings

POD_PROFILES_DIR = "/etc/ig-metrics/profiles"
CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIGMAP_MAX_BYTES = 1024 * 1024          # the API server refuses a larger ConfigMap
# How to read the destination of each push exporter type, to spot loopback.
ENDPOINT_PARSERS: dict[str, Callable[[str], Endpoint]] = {
    "otlp-grpc": parse_grpc_endpoint,
    "otlp-http": parse_http_endpoint,
}


class DeployInputError(Exception):
    """Profiles the DaemonSet could not run with; `lines` say where and why."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class ScrapeEndpoint:
    """A Prometheus exporter of the profile, as the pod serves it."""

    exporter: str
    port: int
    scheme: str                    # "http" or "https"
    credentials: bool              # basic auth or a client certificate asked of scrapers


@dataclass
class PodProfiles:
    files: dict[str, str]                  # ConfigMap data: file name -> YAML text
    profile: Profile                       # the chosen profile, as the pod resolves it
    scrape: list[ScrapeEndpoint]           # its Prometheus exporters, in profile order
    notes: list[str] = field(default_factory=list)   # for stderr: changes made, doubts

    @property
    def size(self) -> int:
        return sum(len(text.encode()) for text in self.files.values())


def pod_profiles(directory: Path, profile_name: str, environ: Mapping[str, str]) -> PodProfiles:
    """Read and check `directory` as the pod will (its environment is `environ`);
    DeployInputError lists every problem as FILE:LINE: message."""
    # Every exporter type comes with the catalog (grpc, requests...): only
    # `deploy` needs it, not every start of the command line.
    from ig_metrics.catalog.loading import load_catalog

    catalog = load_catalog([directory], environ=environ)
    if catalog.errors:
        raise DeployInputError([str(problem) for problem in catalog.problems])
    try:
        profile = catalog.profile(profile_name)
    except ConfigError as error:
        raise DeployInputError([str(error)]) from error
    files = {path.name: path.read_text(encoding="utf-8") for path in catalog.files}
    bad_keys = [name for name in files if not CONFIGMAP_KEY.fullmatch(name)]
    if bad_keys:
        raise DeployInputError([f"{directory}/{name}: a ConfigMap key may hold only letters, "
                                "digits, '-', '_' and '.'; rename the file" for name in bad_keys])
    notes = [str(problem) for problem in catalog.warnings]
    for exporter in profile.exporters:
        if exporter.type == "prometheus":
            _listen_on_every_interface(exporter, files, notes)
        notes.extend(_doubts(exporter))
    in_pod = _resolve_again(files, profile_name, environ)
    scrape = [scrape_endpoint(exporter) for exporter in in_pod.exporters
              if exporter.type == "prometheus"]
    result = PodProfiles(files, in_pod, scrape, notes)
    if result.size > CONFIGMAP_MAX_BYTES:
        raise DeployInputError([f"{directory}: the profiles come to {result.size} bytes; a "
                                f"ConfigMap holds at most {CONFIGMAP_MAX_BYTES}: deploy a "
                                "directory with only the files the profile needs"])
    return result


def scrape_endpoint(exporter: ResolvedExporter) -> ScrapeEndpoint:
    settings = cast("PrometheusSettings", exporter.settings)      # a prometheus exporter
    tls = settings.tls
    return ScrapeEndpoint(exporter.name, settings.port, "https" if tls else "http",
                          bool(settings.basic_auth) or (tls is not None
                                                        and tls.client_ca_file is not None))


def _listen_on_every_interface(exporter: ResolvedExporter, files: dict[str, str],
                               notes: list[str]) -> None:
    """A pod is scraped on its pod IP, which is not known before it runs:
    any other listen host (127.0.0.1 by default) becomes 0.0.0.0, same port."""
    settings = cast("PrometheusSettings", exporter.settings)      # a prometheus exporter
    if settings.host in WILDCARD_HOSTS:
        return
    name = Path(exporter.template.file).name
    listen = f"{ALL_INTERFACES}:{settings.port}"
    files[name] = set_listen(files[name], exporter.name, listen,
                             note=f"set by ig-metrics deploy (was {settings.listen})")
    notes.append(f"{exporter.template.file}:{exporter.template.line}: exporter {exporter.name} "
                 f"listens on {settings.listen}; in the pod it listens on {listen} so that "
                 f"Prometheus can scrape the pod IP (the ConfigMap's copy says so)")


def set_listen(text: str, exporter: str, listen: str, note: str = "") -> str:
    """`text` with exporters.<exporter>.listen set to `listen` (and `note` as a
    comment after it, in block style), every other byte unchanged."""
    root = yaml.compose(text, Loader=BoundedLoader)     # the text the catalog just read
    assert root is not None
    settings = _value(_value(root, "exporters"), exporter)
    value_text = f'"{listen}"'
    if settings.flow_style:                # {type: prometheus}: no room for a comment
        for key, value in settings.value:
            if key.value == "listen":
                return text[:value.start_mark.index] + value_text + text[value.end_mark.index:]
        brace = settings.start_mark.index + 1
        return f"{text[:brace]}listen: {value_text}, {text[brace:]}"
    if note:
        value_text += f"   # {note}"
    for key, value in settings.value:
        if key.value == "listen":
            return text[:value.start_mark.index] + value_text + text[value.end_mark.index:]
    # No listen key yet: a line of its own, indented as the first key.
    first = settings.value[0][0].start_mark
    indent = " " * first.column
    return f"{text[:first.index]}listen: {value_text}\n{indent}{text[first.index:]}"


def _value(mapping: yaml.Node, key: str) -> yaml.MappingNode:
    """The mapping under `key` (exporters:, then an exporter's)."""
    for key_node, value in mapping.value:
        if key_node.value == key:
            return value
    raise KeyError(key)     # the catalog just read this key: not a user's mistake


def _resolve_again(files: dict[str, str], profile_name: str,
                   environ: Mapping[str, str]) -> Profile:
    """The profile read back from the ConfigMap's text, as the pod will."""
    with tempfile.TemporaryDirectory(prefix="ig-metrics-deploy-") as scratch:
        for name, text in files.items():
            (Path(scratch) / name).write_text(text)
        from ig_metrics.catalog.loading import load_catalog  # see pod_profiles

        catalog = load_catalog([Path(scratch)], environ=environ)
        if catalog.errors:
            # Two Prometheus exporters on one port, once both listen on 0.0.0.0.
            raise DeployInputError([
                "listening on 0.0.0.0, as a pod must, the profiles no longer validate:",
                *(f"{problem.message} (line {problem.line} of the ConfigMap's "
                  f"{Path(problem.file).name})" for problem in catalog.errors)])
        return catalog.profile(profile_name)


def _doubts(exporter: ResolvedExporter) -> list[str]:
    where = f"{exporter.template.file}:{exporter.template.line}: exporter {exporter.name}"
    doubts = []
    parse = ENDPOINT_PARSERS.get(exporter.type)
    if parse is not None:
        endpoint = parse(cast("OtlpSettings", exporter.settings).endpoint)     # an OTLP one
        if is_loopback(endpoint.host):
            doubts.append(f"{where} sends to {endpoint.host}, which in the pod is the pod "
                          "itself: point it at the collector's Service, e.g. with --env "
                          "OTEL_EXPORTER_OTLP_ENDPOINT=otel-collector.observability.svc:4317 "
                          "when the profile reads that variable")
    files = sorted(_file_settings(exporter.settings.as_written()))
    if files:
        doubts.append(f"{where} reads {', '.join(files)}, which the ConfigMap does not hold: "
                      f"mount them in the pod where the profile names them (relative paths "
                      f"are under {POD_PROFILES_DIR})")
    return doubts


def _file_settings(written: Mapping, prefix: str = "") -> list[str]:
    found = []
    for key, value in written.items():
        if isinstance(value, Mapping):
            found.extend(_file_settings(value, f"{prefix}{key}."))
        elif key.endswith("_file") or key == "dir":
            found.append(f"{prefix}{key} {value}")
    return found
