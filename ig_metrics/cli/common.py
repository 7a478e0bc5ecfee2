"""What every command module shares: exit codes, failing with a message, JSON and
table output, and the --profiles-dir option."""

from __future__ import annotations

import json
import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

WIDE_OUTPUT_COLUMNS = 200    # tables piped to a file or grep are not wrapped at 80


class ExitCode(IntEnum):
    OK = 0
    RUNTIME_FAILURE = 1
    INVALID_INPUT = 2


ProfilesDirOption = Annotated[
    Path | None,
    typer.Option(
        "--profiles-dir",
        metavar="DIR",
        help="Directory of profile *.yaml files. Default: $IG_METRICS_PROFILES_DIR, "
             "else ./profiles if it exists, else the built-in profiles.",
        show_default=False,
    ),
]


def fail(message: str, code: int = ExitCode.INVALID_INPUT) -> NoReturn:
    """Print `message` on stderr and exit with `code` (default 2: invalid input)."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def print_lines(lines: list[str], *, err: bool = False) -> None:
    for line in lines:
        typer.echo(line, err=err)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def print_table(table: Table) -> None:
    stdout_console().print(table)


def stdout_console() -> Console:
    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        width = WIDE_OUTPUT_COLUMNS
    return Console(file=sys.stdout, width=width, highlight=False)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
