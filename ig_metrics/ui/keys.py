"""Keys typed on the live table's terminal, read from a daemon thread: stdin in
cbreak mode (no echo, no line editing) while the table is up, put back as it
was after, however the run ends."""

from __future__ import annotations

import os
import select
import sys
import termios
import threading
import tty
from collections.abc import Callable
from typing import TextIO

POLL = 0.2                        # seconds between two looks at whether to stop
NAMED = {"\x1b": "escape", "\t": "tab", "\r": "enter", "\n": "enter", "\x7f": "backspace",
         "\x08": "backspace"}


def split_keys(data: str) -> list[str]:
    """The keys in what one read returned: characters, named keys, and an
    escape sequence (an arrow key) as one unnamed key, ignored by the view."""
    keys, index = [], 0
    while index < len(data):
        char = data[index]
        if char == "\x1b" and data[index + 1:index + 2] in ("[", "O"):
            end = index + 2
            while end < len(data) and not data[end].isalpha() and data[end] != "~":
                end += 1
            keys.append(data[index:end + 1])
            index = end + 1
            continue
        keys.append(NAMED.get(char, char))
        index += 1
    return keys


class KeyReader:
    """Calls `on_key` with each key typed on `stream`, while in its `with`
    block; does nothing when `stream` is not a terminal."""

    def __init__(self, on_key: Callable[[str], None], stream: TextIO = sys.stdin) -> None:
        self.on_key = on_key
        self.stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: list | None = None

    @property
    def active(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> KeyReader:
        try:
            if not self.stream.isatty():
                return self
            fd = self.stream.fileno()
            self._saved = termios.tcgetattr(fd)
        except (OSError, ValueError, termios.error):
            # No terminal to read (stdin closed, a pipe): the table shows, without keys.
            return self
        tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._read, args=(fd,), name="keys",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(POLL * 5)
        if self._saved is not None:
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)

    def _read(self, fd: int) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], POLL)
            if not ready:
                continue
            data = os.read(fd, 64)
            if not data:             # the terminal went away
                return
            for key in split_keys(data.decode(errors="ignore")):
                self.on_key(key)
