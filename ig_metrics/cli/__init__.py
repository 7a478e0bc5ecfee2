"""The `ig-metrics` command line: one module per command group, each thin."""

from __future__ import annotations

import importlib
import os

import typer
from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _flag_type_rich(option: TyperOption, ctx) -> str | None:
    """No type for a flag: it takes no value. Typer's rich help (0.29), unlike its
    plain one, shows one for every option (`--no-tui <bool>`, `--help <bool>`);
    Typer makes every option, --help included, so its class is the one place."""
    return None if option.is_flag else _display_type_rich(option, ctx)


TyperOption.display_type_rich = _flag_type_rich  # type: ignore[method-assign,assignment]

app = typer.Typer(
    name="ig-metrics",
    help=(
        "Run eBPF gadgets and stream the metrics they aggregate in the kernel to "
        "Prometheus and OTLP exporters at once, chosen by named profiles."
    ),
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

# Each module registers its commands on `app`; adding a command group is one line here.
COMMAND_MODULES = (
    "ig_metrics.cli.run",
    "ig_metrics.cli.exporters",
    "ig_metrics.cli.gadgets",
    "ig_metrics.cli.doctor",
    "ig_metrics.cli.deploy",
    "ig_metrics.cli.mixin",
    "ig_metrics.cli.cluster",
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    try:
        app()
    except Exception as error:   # a bug of ours: one line, not a traceback (exit 1)
        typer.echo(f"ig-metrics: internal error: {type(error).__name__}: {error} "
                   "(please report it; IG_METRICS_DEBUG=1 shows the traceback)", err=True)
        if os.environ.get("IG_METRICS_DEBUG"):
            raise
        raise SystemExit(1) from None
