"""What every command module shares: exit codes, failing with a message, JSON and
table output, the --profiles-dir option, and Ctrl-C / SIGTERM asking a run to stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

UNBOUNDED_COLUMNS = 1 << 16     # wider than any table's rows


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
    """A table of one row per item (a listing). Piped or redirected, with no
    COLUMNS, as wide as its rows need unwrapped (at least the console's
    width): `| grep` and `> file` get each row on one line."""
    console = stdout_console()
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        # Measured without the console's bound (measure() caps at its width).
        unbounded = console.options.update_width(UNBOUNDED_COLUMNS)
        needed = console.measure(table, options=unbounded).maximum
        if needed > console.width:
            console = Console(file=sys.stdout, width=needed, highlight=False)
    console.print(table)


def stdout_console() -> Console:
    """Rich's console on stdout, at Rich's width: COLUMNS if set, else that of
    the terminal stdin, stdout or stderr is on (`describe | less` reads at the
    width of the screen it shows on), else 80."""
    return Console(file=sys.stdout, highlight=False)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class StopOnSignals:
    """While entered, SIGINT and SIGTERM set `stop` (the run then detaches and
    deletes what it made), at once, whichever thread the kernel delivers them
    to. Python runs a signal's handler only in the main thread, when that next
    runs a bytecode: a signal delivered to another thread (container runtimes
    and kubelets send SIGTERM to the process, and any thread may take it)
    waited for the main thread's next wake-up, up to a whole interval, past a
    pod's grace period. So the handler is not where the stop is set: Python's
    own C-level handler, which runs at once in the receiving thread, writes the
    signal to a wakeup pipe (signal.set_wakeup_fd), and a thread of ours reads
    it and sets `stop`. Neither takes a lock, so a signal that lands while the
    main thread holds the event's lock (inside `stop.wait()`) cannot deadlock
    either (seen once: a SIGTERM a cluster run never acted on)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._old: dict = {}
        self._old_wakeup = -1

    def __enter__(self) -> StopOnSignals:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)     # set_wakeup_fd's requirement
        self._relay = threading.Thread(target=self._set_stop, name="stop-on-signal",
                                       daemon=True)
        self._relay.start()
        self._old_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        """Installed so that the signals do not end the process; the wakeup
        pipe has already told the relay."""

    def _set_stop(self) -> None:
        # Each byte is a signal's number: the pipe hears every signal that has
        # a Python handler, and only ours stop the run.
        while signum := os.read(self._read, 1):      # b"": the pipe closed by __exit__
            if signum[0] in self.SIGNALS:
                self.stop.set()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._write)
        self._relay.join(1.0)
        os.close(self._read)
