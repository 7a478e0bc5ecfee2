"""`ig-metrics gadgets list|describe|schema`: the gadget catalog, straight from the
specs, and the JSON Schema of a gadget.yaml."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich import box
from rich.console import Group
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ig_metrics.app.gadget_catalog import describe, markdown_catalog, markdown_gadget
from ig_metrics.bpf.hookplan import plan_hooks
from ig_metrics.cli.common import ExitCode, fail, print_json, print_table, stdout_console
from ig_metrics.gadgets import GadgetSpecError, UnknownGadget, builtin_specs, resolve
from ig_metrics.gadgets.schema import json_schema

gadgets_app = typer.Typer(
    name="gadgets",
    help="The eBPF gadgets ig-metrics can run and the metrics each one exports.",
    no_args_is_help=True,
)


class ListFormat(StrEnum):
    table = "table"
    json = "json"


class DescribeFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


@gadgets_app.command("list")
def list_gadgets(
    output: Annotated[ListFormat, typer.Option("--output", "-o", help="table or json")]
    = ListFormat.table,
) -> None:
    """List the built-in gadgets.

    Example: [bold]ig-metrics gadgets list --output json[/bold]
    """
    specs = _builtin_or_fail()
    if output is ListFormat.json:
        print_json([{"name": spec.name, "summary": spec.summary,
                     "metrics": [metric.name for metric in spec.metrics],
                     "hooks": [f"{hook.kind}:{hook.target}" for hook in spec.hooks]}
                    for spec in specs])
        return
    table = Table(title="Gadgets", title_justify="left")
    table.add_column("gadget", style="bold")
    table.add_column("what it measures")
    table.add_column("metrics")
    for spec in specs:
        table.add_row(spec.name, spec.summary, ", ".join(metric.name for metric in spec.metrics))
    print_table(table)
    typer.echo("\nDetails: ig-metrics gadgets describe NAME")


@gadgets_app.command("describe")
def describe_gadget(
    gadget: Annotated[str, typer.Argument(
        metavar="GADGET", help="A built-in gadget name (see 'gadgets list') or a gadget folder.")],
    output: Annotated[DescribeFormat, typer.Option(
        "--output", "-o", help="text, json, or markdown (the docs/gadgets.md format)")]
    = DescribeFormat.text,
) -> None:
    """Every metric a gadget exports: kind, unit, attributes, histogram buckets,
    and the kernel hooks it attaches to.

    Examples:
      [bold]ig-metrics gadgets describe tcp[/bold]
      [bold]ig-metrics gadgets describe ./my-gadget/ --output json[/bold]
    """
    try:
        spec = resolve(gadget)
    except UnknownGadget as error:
        fail(str(error))
    except GadgetSpecError as error:
        fail(str(error))
    if output is DescribeFormat.json:
        print_json(describe(spec))
    elif output is DescribeFormat.markdown:
        typer.echo(markdown_gadget(spec), nl=False)
    else:
        _print_text(spec)


def _print_text(spec) -> None:
    console = stdout_console()
    data = describe(spec)
    # A spec's words are printed as written: '[' in them is not Rich markup.
    console.print(f"[bold]{spec.name}[/bold] — {escape(spec.summary)}\n")
    if spec.description:
        console.print(escape(spec.description) + "\n")
    console.print(_metrics_list(data))
    console.print(_attributes_table(data))
    opt_in = data["opt_in_attributes"]
    if opt_in:
        console.print(Text(f"Opt-in attributes ({', '.join(opt_in)}) are kept only where "
                           "the profile names them: attributes: {opt_in: [NAME]}.\n"))
    if data["parameters"]:
        parameters = Table(title=f"Parameters (run --gadget {spec.name} --param NAME=VALUE)",
                           title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("parameter", "type", "default", "description"):
            parameters.add_column(column, overflow="fold")
        for parameter in data["parameters"]:
            parameters.add_row(parameter["name"], parameter["type"],
                               escape(repr(parameter["default"])),
                               escape(parameter["description"]))
        console.print(parameters)
    console.print(_hooks_list(spec))


def _metrics_list(data: dict) -> Group:
    """A line per metric (name, kind, unit, buckets), its description indented
    below: whole names and unclipped words at any width, 80 columns included."""
    lines: list = [Text("Metrics", style="italic")]
    for metric in data["metrics"]:
        about = f"{metric['kind']}, {metric['unit']}"
        bounds = metric.get("bounds")
        if bounds:
            about += f"; {len(bounds)} bucket bounds, {bounds[1]:g} to {bounds[-1]:g}"
        lines.append(Text.assemble("  ", (metric["name"], "bold"), f" ({about})"))
        lines.append(Padding(Text(metric["description"]), (0, 0, 0, 6)))
    lines.append(Text(""))
    return Group(*lines)


def _attributes_table(data: dict) -> Table:
    """One row per attribute, with the metrics that carry it: most carry the
    same, so a row each (not a list per metric) reads on 80 columns."""
    optional, opt_in = set(data["optional_attributes"]), set(data["opt_in_attributes"])
    every = [metric["name"] for metric in data["metrics"]]
    carried: dict[str, list[str]] = {}
    for metric in data["metrics"]:
        for name in metric["attributes"]:
            carried.setdefault(name, []).append(metric["name"])
    table = Table(title="Attributes", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("attribute", style="bold", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("metrics", overflow="fold")
    for name, metrics in carried.items():
        note = "opt-in" if name in opt_in else "if set" if name in optional else ""
        table.add_row(escape(name), note,
                      "every metric" if metrics == every else ", ".join(metrics))
    return table


def _hooks_list(spec) -> Group:
    """The spec's hooks and, below each, what this kernel would attach for it
    and the metrics it counts for (a list: targets whole at any width)."""
    plan = plan_hooks(spec, atomics=False)
    lines: list = [Text(f"Kernel hooks (here: Linux {plan.release})", style="italic")]
    for choice in plan.choices:
        hook = choice.hook
        here = choice.used if choice.available else "missing"
        if choice.uses_fallback:
            here += f" ({hook.fallback_note})"
        lines.append(Text.assemble("  ", (hook.program, "bold"), f": {hook.label}"))
        details = f"here: {here}\nfor: {', '.join(hook.metrics) or '—'}"
        lines.append(Padding(Text(details), (0, 0, 0, 6)))
    return Group(*lines)


@gadgets_app.command(
    "schema",
    epilog="Examples:\n\n"
           "  ig-metrics gadgets schema > gadget.schema.json\n\n"
           "Then, for editors with the YAML language server (VS Code, Neovim, …), "
           "put this first line in your gadget.yaml:\n\n"
           "  # yaml-language-server: $schema=./gadget.schema.json\n\n"
           "`ig-metrics gadgets describe ./my-gadget/` checks what the schema "
           "cannot (the program exists, names refer to metrics and parameters).",
)
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of a gadget.yaml, so that an editor
    checks your gadget while you type."""
    print_json(json_schema())


def _builtin_or_fail():
    try:
        return builtin_specs()
    except GadgetSpecError as error:
        # A broken built-in spec is a bug of ours, not the user's input.
        fail(f"internal error: {error}", ExitCode.RUNTIME_FAILURE)


def register(app: typer.Typer) -> None:
    app.add_typer(gadgets_app)


__all__ = ["register", "markdown_catalog"]
