"""`ig-metrics mixin`: write the Grafana dashboards and Prometheus rules
generated from the gadget specs (docs/monitoring.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ig_metrics.app import mixin
from ig_metrics.app.mixin.rules import DEFAULT_RUNBOOK_BASE
from ig_metrics.cli.common import ExitCode, fail
from ig_metrics.gadgets import GadgetSpecError, UnknownGadget, builtin_specs, resolve
from ig_metrics.gadgets.spec import GadgetSpec


def register(app: typer.Typer) -> None:
    app.command(
        "mixin",
        epilog="Examples:\n\n"
               "  ig-metrics mixin --output monitoring/\n\n"
               "  ig-metrics mixin --gadget tcp --output /tmp/tcp-monitoring\n\n"
               "  ig-metrics mixin --gadget ./my-gadget/ --output my-monitoring "
               "--runbook-base https://wiki.example/ig-metrics/monitoring.md",
    )(mixin_command)


def specs_for(gadgets: list[str]) -> list[GadgetSpec]:
    """The specs of the named gadgets (built-in names or folders), or of every
    built-in gadget; a bad name or spec fails with exit code 2."""
    try:
        if not gadgets:
            return builtin_specs()
        return [resolve(gadget) for gadget in gadgets]
    except (UnknownGadget, GadgetSpecError) as error:
        fail(str(error))


def mixin_command(
    output: Annotated[Path, typer.Option(
        "--output", "-o", metavar="DIR", file_okay=False,
        help="Directory to write into (made if missing): dashboards/*.json, "
             "prometheus/alerts.yaml, prometheus/recording.yaml.")],
    gadget: Annotated[list[str] | None, typer.Option(
        "--gadget", "-g", metavar="NAME",
        help="A built-in gadget or a gadget folder (repeat for several). "
             "Default: every built-in gadget.")] = None,
    runbook_base: Annotated[str, typer.Option(
        "--runbook-base", metavar="URL",
        help="Where docs/monitoring.md is served: each alert's runbook_url is "
             "URL#its-section.")] = DEFAULT_RUNBOOK_BASE,
) -> None:
    """Write Grafana dashboards and Prometheus alerting and recording rules.

    One dashboard per gadget (rates of its counters, quantiles and heatmaps of
    its histograms, classic and native), an overview of every gadget per node,
    and 'ig-metrics health' (exporters, queues, drops, overflow, BPF maps,
    sampler). Alerts on ig-metrics' own health, each with a runbook section in
    docs/monitoring.md; recording rules for the overview's per-node rates.
    'ig-metrics deploy --monitoring' puts the same files into the cluster.
    """
    specs = specs_for(gadget or [])
    try:
        written = mixin.write(mixin.build(specs, runbook_base), output)
    except OSError as error:
        fail(f"{output}: cannot write the mixin: {error.strerror}", ExitCode.RUNTIME_FAILURE)
    for path in written:
        typer.echo(str(path))
