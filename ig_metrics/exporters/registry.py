"""Every exporter type, by the `type:` of a profile's exporter template: one
line each. A type is one module that declares TYPE (its settings class, their
table and rules, its implementation); adding a type is that module and one line
here (docs/exporters.md, "Adding an exporter type")."""

from __future__ import annotations

from typing import Any

from ig_metrics.config.model import ResolvedExporter
from ig_metrics.exporters import console
from ig_metrics.exporters.base import Exporter, ExporterType
from ig_metrics.exporters.otlp import grpc as otlp_grpc
from ig_metrics.exporters.otlp import http as otlp_http
from ig_metrics.exporters.prometheus import exporter as prometheus
from ig_metrics.exporters.remotewrite import exporter as remote_write

# In this order in `exporters list`, the JSON Schema and the docs.
EXPORTER_TYPES: dict[str, ExporterType] = {t.name: t for t in (
    prometheus.TYPE,
    otlp_grpc.TYPE,
    otlp_http.TYPE,
    remote_write.TYPE,
    console.TYPE,
)}

EXPORTER_CLASSES: dict[str, type[Exporter[Any]]] = {
    name: exporter_type.implementation for name, exporter_type in EXPORTER_TYPES.items()}


def create_exporter(config: ResolvedExporter, *, console: Any = None) -> Exporter[Any]:
    """The exporter for `config`, not started yet. `console` (a text stream or a
    Rich Console) is where console exporters print; None means stdout."""
    try:
        exporter_class = EXPORTER_CLASSES[config.type]
    except KeyError:
        raise ValueError(f"exporter {config.name}: unknown type {config.type!r}; "
                         f"known: {', '.join(EXPORTER_CLASSES)}") from None
    return exporter_class.from_config(config, console=console)
