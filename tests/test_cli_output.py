"""What the commands print, as a user's shell gets it: piped output at a width
that reads (the terminal's the pipe ends on, else COLUMNS, else 80; listings
unwrapped, a row a line), and no value shown for a flag in any --help."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios

import pytest
import typer
from typer.testing import CliRunner

from ig_metrics.cli import app
from tests.test_run_e2e import IG_METRICS


def piped(*args: str, columns: str | None = None, terminal_columns: int | None = None) -> str:
    """The command's stdout through a pipe, with COLUMNS set or not, and its
    stdin and stderr on a terminal of `terminal_columns` (none: no terminal)."""
    env = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")}
    if columns is not None:
        env["COLUMNS"] = columns
    if terminal_columns is None:
        done = subprocess.run([IG_METRICS, *args], stdin=subprocess.DEVNULL,
                              capture_output=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()
    leader, follower = pty.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, terminal_columns, 0, 0))
        done = subprocess.run([IG_METRICS, *args], stdin=follower, stderr=follower,
                              stdout=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0
    return done.stdout.decode()


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_piped_with_no_terminal_and_no_columns_is_80_wide():
    assert widest(piped("gadgets", "describe", "tcp")) == 80


def test_piped_output_takes_columns():
    assert widest(piped("gadgets", "describe", "tcp", columns="100")) == 100


def test_piped_to_a_pager_on_a_terminal_is_as_wide_as_the_terminal():
    """`gadgets describe tcp | less` on a 90-column terminal: stdin and stderr
    are that terminal, stdout the pipe."""
    assert widest(piped("gadgets", "describe", "tcp", terminal_columns=90)) == 90


def test_a_piped_listing_has_each_row_on_one_line():
    """`exporters list | grep prom-local`: the row whole, every profile using it."""
    listing = piped("exporters", "list")
    [row] = [line for line in listing.splitlines() if "prom-local" in line and "prometheus" in line]
    assert all(profile in row for profile in ("local", "per-process", "node", "otlp-prod",
                                              "hybrid", "remote-write"))
    assert widest(listing) > 80


def commands(group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path under `group` (Typer's click group), groups included."""
    found = [path]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


EVERY_COMMAND = commands(typer.main.get_command(app))


@pytest.mark.parametrize("path", EVERY_COMMAND, ids=lambda path: " ".join(path) or "ig-metrics")
def test_no_help_shows_a_value_for_a_flag(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output


def test_run_help_as_installed_lists_its_flags_bare():
    done = subprocess.run([IG_METRICS, "run", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60)
    # The rows of the options panel: "│ --no-tui   No live table: ..."
    flags = [line for line in done.stdout.splitlines()
             if any(line.startswith(f"│ {flag} ") for flag in ("--no-tui", "--cluster", "--help"))]
    assert len(flags) == 3 and not any("<bool>" in line for line in flags), flags
    assert len(EVERY_COMMAND) > 10
