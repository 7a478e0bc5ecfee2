"""`ig-metrics exporters list|validate|schema`: show, check and describe the
exporter templates and profiles of a profiles directory."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from ig_metrics.catalog.directories import resolve_profiles_dir
from ig_metrics.cli.common import (
    ExitCode,
    ProfilesDirOption,
    fail,
    plural,
    print_json,
    print_lines,
    print_table,
)

if TYPE_CHECKING:
    from ig_metrics.catalog.loading import Catalog

exporters_app = typer.Typer(
    name="exporters",
    help="List, validate and describe exporter templates and profiles.\n\n"
         "An exporter template (under `exporters:` in a profiles file) says where metrics "
         "go; a profile (under `profiles:`) names the templates `run --profile` uses.",
    epilog="Examples:\n\n"
           "  ig-metrics exporters list\n\n"
           "  ig-metrics exporters validate my-profiles/\n\n"
           "  ig-metrics run --gadget tcp --profile local --profiles-dir my-profiles/",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


class ListFormat(StrEnum):
    table = "table"
    json = "json"


class ValidateFormat(StrEnum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.add_typer(exporters_app, name="exporters")


@exporters_app.command(
    "list",
    epilog="Examples:\n\n"
           "  ig-metrics exporters list\n\n"
           "  ig-metrics exporters list --profiles-dir /etc/ig-metrics/profiles --output json",
)
def list_exporters(
    profiles_dir: ProfilesDirOption = None,
    output: Annotated[ListFormat, typer.Option(
        "--output", "-o", help="table for people, json for scripts.")] = ListFormat.table,
) -> None:
    """Show every exporter template: type, address, interval, temporality, the
    profiles that use it and where it is defined; then every profile.

    Header values and values taken from the environment are shown as ***.
    """
    # Loading a catalog takes in every exporter type (grpc, requests,
    # prometheus_client): imported by the commands that read one, not by every
    # start of ig-metrics (--help, shell completion).
    from ig_metrics.catalog.listing import exporter_summaries, profile_summaries
    from ig_metrics.catalog.loading import load_catalog

    directory, chosen_by = resolve_profiles_dir(profiles_dir)
    catalog = load_catalog([directory])
    print_lines([str(problem) for problem in catalog.problems], err=True)
    if catalog.errors:
        fail(f"{plural(len(catalog.errors), 'error')} in {directory} ({chosen_by}); "
             "see `ig-metrics exporters validate`")
    exporters, profiles = exporter_summaries(catalog), profile_summaries(catalog)
    if output is ListFormat.json:
        print_json({"profiles_dir": str(directory), "chosen_by": chosen_by,
                    "exporters": exporters, "profiles": profiles})
        return
    print_table(_exporters_table(exporters, f"{directory} ({chosen_by})"))
    print_table(_profiles_table(profiles))


def _exporters_table(rows: list[dict], source: str) -> Table:
    table = Table(title="Exporter templates", caption=Text(f"from {source}"),
                  title_justify="left")
    for column in ("name", "type", "address", "interval", "temporality", "profiles", "defined at"):
        table.add_column(column, overflow="fold")
    for row in rows:
        _add_plain_row(table, (
            row["name"], row["type"], row["address"],
            row["interval"] or "profile default",
            row["temporality"] or "-",
            ", ".join(row["profiles"]) or "(unused)",
            f"{row['file']}:{row['line']}",
        ))
    return table


def _profiles_table(rows: list[dict]) -> Table:
    table = Table(title="Profiles", title_justify="left")
    for column in ("name", "exporters", "interval", "description", "defined at"):
        table.add_column(column, overflow="fold")
    for row in rows:
        _add_plain_row(table, (
            row["name"], ", ".join(row["exporters"]), row["interval"] or "default",
            row["description"], f"{row['file']}:{row['line']}",
        ))
    return table


def _add_plain_row(table: Table, cells: tuple[str, ...]) -> None:
    # Text, not markup: a "[red]" in a description or "[::1]" is shown as written.
    table.add_row(*(Text(cell) for cell in cells))


@exporters_app.command(
    "validate",
    epilog="Examples:\n\n"
           "  ig-metrics exporters validate                   # the profiles directory\n\n"
           "  ig-metrics exporters validate profiles/ extra.yaml\n\n"
           "  ig-metrics exporters validate --output json     # for CI",
)
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(
        metavar="FILE_OR_DIR", show_default=False,
        help="Files, or directories of *.yaml files, checked together as one "
             "catalog. Default: the profiles directory.")] = None,
    profiles_dir: ProfilesDirOption = None,
    output: Annotated[ValidateFormat, typer.Option(
        "--output", "-o", help="text (FILE:LINE: message) or json.")] = ValidateFormat.text,
) -> None:
    """Check profiles files and report every mistake as FILE:LINE: message.

    Exits 0 when there is no error (warnings allowed), 2 otherwise.
    """
    from ig_metrics.catalog.loading import load_catalog  # start-up cost: see list_exporters

    if paths and profiles_dir is not None:
        fail("give FILE_OR_DIR arguments or --profiles-dir, not both")
    if not paths:
        directory, chosen_by = resolve_profiles_dir(profiles_dir)
        paths, source = [directory], f"{directory} ({chosen_by})"
    else:
        source = ", ".join(str(path) for path in paths)
    catalog = load_catalog(paths)
    if output is ValidateFormat.json:
        print_json(_validation_report(catalog))
    else:
        print_lines([str(problem) for problem in catalog.problems])
        typer.echo(_summary(catalog, source))
    raise typer.Exit(ExitCode.INVALID_INPUT if catalog.errors else ExitCode.OK)


def _summary(catalog: Catalog, source: str) -> str:
    return (f"{source}: {plural(len(catalog.files), 'file')}, "
            f"{plural(len(catalog.declared_exporters), 'exporter')}, "
            f"{plural(len(catalog.declared_profiles), 'profile')}, "
            f"{plural(len(catalog.errors), 'error')}, "
            f"{plural(len(catalog.warnings), 'warning')}")


def _validation_report(catalog: Catalog) -> dict:
    return {
        "ok": not catalog.errors,
        "files": [str(path) for path in catalog.files],
        "problems": [
            {"file": p.file, "line": p.line, "severity": p.severity, "message": p.message}
            for p in catalog.problems
        ],
        "exporters": len(catalog.declared_exporters),
        "profiles": len(catalog.declared_profiles),
    }


@exporters_app.command(
    "schema",
    epilog="Examples:\n\n"
           "  ig-metrics exporters schema > profiles.schema.json\n\n"
           "Then, for editors with the YAML language server (VS Code, Neovim, …), "
           "put this first line in a profiles file:\n\n"
           "  # yaml-language-server: $schema=./profiles.schema.json",
)
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of a profiles file, so that an editor
    checks the file while you type."""
    from ig_metrics.catalog.schema import json_schema  # start-up cost: see list_exporters

    print_json(json_schema())
