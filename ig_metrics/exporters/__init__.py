"""Exporter types by the `type:` of a profile's exporter template, behind one
factory. Adding a type is one module and one line in EXPORTER_CLASSES."""

from __future__ import annotations

from typing import Any

from ig_metrics.config.model import ResolvedExporter
from ig_metrics.exporters.base import Exporter
from ig_metrics.exporters.console import ConsoleExporter
from ig_metrics.exporters.otlp_grpc import OtlpGrpcExporter
from ig_metrics.exporters.otlp_http import OtlpHttpExporter
from ig_metrics.exporters.prometheus import PrometheusExporter

EXPORTER_CLASSES: dict[str, type[Exporter]] = {
    "prometheus": PrometheusExporter,
    "otlp-grpc": OtlpGrpcExporter,
    "otlp-http": OtlpHttpExporter,
    "console": ConsoleExporter,
}


def create_exporter(config: ResolvedExporter, *, console: Any = None) -> Exporter:
    """The exporter for `config`, not started yet. `console` (a text stream or a
    Rich Console) is where console exporters print; None means stdout."""
    try:
        exporter_class = EXPORTER_CLASSES[config.type]
    except KeyError:
        raise ValueError(f"exporter {config.name}: unknown type {config.type!r}; "
                         f"known: {', '.join(EXPORTER_CLASSES)}") from None
    return exporter_class.from_config(config, console=console)


__all__ = ["EXPORTER_CLASSES", "create_exporter"]
