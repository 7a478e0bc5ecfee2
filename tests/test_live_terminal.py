"""The live table in a real terminal: `ig-metrics run` inside tmux (a real
terminal emulator, at 160×45 and at 80×24), real TCP traffic of known size, the
screen read back with `tmux capture-pane` and keys typed with `tmux send-keys`.
Exact totals on screen, the recent window's percentiles moving when the
connections' latency changes, idle rows sinking below live ones, keys that
filter and sort, and the exporters' and samplers' lines on screen whatever its
size."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ig_metrics.bpf.cgroupfs import find_cgroup2_mount
from tests.kubelet_cgroups import JOIN_AND_EXEC
from tests.receivers import free_port
from tests.tcp_workload import EchoCountServer, run_client

pytestmark = [pytest.mark.bpf,
              pytest.mark.skipif(shutil.which("tmux") is None,
                                 reason="tmux is installed by scripts/setup.sh --test")]

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
SLOW_CLIENT = r"""
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, b"igm-slow", 0, 0, 0)      # PR_SET_NAME: our process.command
port, until = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < until:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"x")
    time.sleep(0.1)
"""


class Terminal:
    """A tmux session of its own server, running one command."""

    def __init__(self, command: list[str], width: int, height: int) -> None:
        self.socket = f"igm-test-{os.getpid()}-{width}x{height}"
        self.session = "igm"
        # The size is the terminal's alone: no COLUMNS or LINES from this process.
        self._tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
                   "env -u COLUMNS -u LINES TERM=xterm-256color " + shlex.join(command)
                   + "; sleep 600")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def resize(self, width: int, height: int) -> None:
        self._tmux("resize-window", "-t", self.session, "-x", str(width), "-y", str(height))

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def wait_for(self, condition, what: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            assert time.monotonic() < deadline, f"no {what} after {timeout}s:\n{screen}"
            time.sleep(0.3)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def profiles(directory: Path, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tty.yaml").write_text(f"""
exporters:
  prom-tty: {{type: prometheus, listen: "127.0.0.1:{port}"}}
profiles:
  tty: {{exporters: [prom-tty], interval: 1s}}
""")
    return directory


@pytest.fixture
def workload():
    """A cgroup of the test's own: the clients run in it, and the run counts it
    only (--cgroup), so the table holds the test's rows whatever else the
    machine does. `workload` is the prefix that starts a process in it."""
    cgroup = Path(find_cgroup2_mount()) / f"igm-live-terminal-{os.getpid()}"
    cgroup.mkdir()
    yield cgroup, ["sh", "-c", JOIN_AND_EXEC, str(cgroup / "cgroup.procs")]
    for _ in range(50):
        try:
            cgroup.rmdir()
            return
        except OSError:          # its last processes are still exiting
            time.sleep(0.1)


@pytest.fixture
def terminal(tmp_path, workload):
    opened: list[Terminal] = []

    def open_terminal(width: int, height: int, *extra: str) -> Terminal:
        command = [IG_METRICS, "run", "-g", "tcp", "-p", "tty", "--profiles-dir",
                   str(profiles(tmp_path / "profiles", free_port())), "--duration", "300s",
                   "--cgroup", str(workload[0]), *extra]
        opened.append(Terminal(command, width, height))
        return opened[-1]

    yield open_terminal
    for each in opened:
        each.close()


def rows_of(screen: str, command: str) -> list[str]:
    return [line for line in screen.splitlines() if re.search(rf"\b{command}\b", line)]


def test_exact_totals_a_filter_and_a_sort_key_at_160x45(terminal, workload):
    server = EchoCountServer(reply_bytes=2_222)
    try:
        term = terminal(160, 45, "--top", "10")
        term.wait_for(lambda screen: "keys: s sort" in screen, "table")
        client = run_client("127.0.0.1", server.port, send_bytes=123_456, name="igm-exact",
                            prefix=workload[1])
        server.wait_for(1)
        screen = term.wait_for(lambda screen: any("123,456 B" in row for row in
                                                  rows_of(screen, "igm-exact")),
                               "igm-exact's exact total")
        [row] = [row for row in rows_of(screen, "igm-exact") if "123,456 B" in row]
        # Keyed by command (pids are opt-in): the server's port and its reply, exact.
        assert client.command in row and str(server.port) in row and "2,222 B" in row
        # The filter key: only the rows holding the text; then the sort key.
        term.keys("/")
        term.keys("-l", "igm-exact")
        term.keys("Enter")
        screen = term.wait_for(lambda screen: "filter 'igm-exact'" in screen, "the filter")
        assert "1 of 1 series matching" in screen, screen
        term.keys("s")
        screen = term.wait_for(lambda screen: "sort received" in screen, "the next sort")
        assert "prom-tty" in screen and "sampler: read in" in screen
    finally:
        server.close()


def test_the_health_and_sampler_lines_stay_at_80x24(terminal, workload):
    server = EchoCountServer()
    try:
        term = terminal(80, 24, "--top", "40")
        term.wait_for(lambda screen: "keys: s sort" in screen, "table")
        for index in range(25):          # more rows than the screen has
            run_client("127.0.0.1", server.port, send_bytes=100 + index, name=f"igm-{index}",
                       prefix=workload[1])
        screen = term.wait_for(lambda screen: len(rows_of(screen, r"igm-\d+")) >= 5,
                               "the clients' rows")
        lines = screen.rstrip("\n").splitlines()
        assert len(lines) <= 24
        assert any(line.startswith("● prom-tty") for line in lines), screen
        assert any(line.startswith("sampler: read in") for line in lines), screen
        assert lines[-1].startswith("keys: s sort"), screen
        assert re.search(r"^tcp: \d+ of \d+ series · sort sent · hidden: \w", screen, re.M), screen
        assert all(len(line) <= 80 for line in lines), screen
    finally:
        server.close()


def test_a_resize_redraws_the_whole_screen(terminal, workload):
    """From 160×45 down to 80×24 and back: each time the screen holds one
    frame of the new size (no line of the old one left, the footer last)."""
    server = EchoCountServer()
    try:
        term = terminal(160, 45, "--top", "10")
        term.wait_for(lambda screen: "keys: s sort" in screen, "table")
        run_client("127.0.0.1", server.port, send_bytes=4_242, name="igm-resize",
                   prefix=workload[1])
        term.wait_for(lambda screen: "igm-resize" in screen, "the client's row")
        for width, height in ((80, 24), (160, 45)):
            term.resize(width, height)
            screen = term.wait_for(
                lambda screen, width=width: (lines := screen.rstrip("\n").splitlines())
                and lines[-1].startswith("keys: s sort")
                and all(len(line) <= width for line in lines)
                and sum(line.startswith("tcp: ") for line in lines) == 1,
                f"one clean frame at {width} columns")
            assert sum("sampler: read in" in line for line in screen.splitlines()) == 1, screen
    finally:
        server.close()


class GatedServer:
    """A listener whose accept queue holds one connection: while it accepts at
    once, a connect takes microseconds; once it accepts one connection per
    second, a client's SYN finds the queue full, is dropped, and the connect
    completes on the SYN's retransmission a second later."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.slow = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.close()
            if self.slow.is_set():
                self.done.wait(1.0)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.sock.close()


def slow_row(screen: str) -> str:
    rows = rows_of(screen, "igm-slow")
    return rows[0] if rows else ""


MICROSECONDS_P99 = re.compile(r"/ ≤ [\d.]+µs\s*$")
SECONDS_P99 = re.compile(r"/ ≤ [\d.]+s\s*$")


def test_recent_percentiles_follow_the_latency_and_idle_rows_sink(terminal, workload):
    """Connects take microseconds, then a second (the listener's queue is
    full), then microseconds again: the recent window's p99 follows both ways,
    where a p99 over the whole run would stay at a second. Meanwhile a client
    that sent far more, once, goes idle and ranks below the live one."""
    gated, echo = GatedServer(), EchoCountServer()
    slow = None
    try:
        term = terminal(160, 45, "--top", "10", "--sort", "sent")
        term.wait_for(lambda screen: "keys: s sort" in screen, "table")
        run_client("127.0.0.1", echo.port, send_bytes=5_000_000, name="igm-idle",
                   prefix=workload[1])
        slow = subprocess.Popen([*workload[1], sys.executable, "-c", SLOW_CLIENT,
                                 str(gated.port), "120"])
        term.wait_for(lambda screen: MICROSECONDS_P99.search(slow_row(screen)),
                      "microsecond connects")
        gated.slow.set()
        term.wait_for(lambda screen: SECONDS_P99.search(slow_row(screen)),
                      "second-long connects in the recent window", timeout=60)
        gated.slow.clear()
        screen = term.wait_for(lambda screen: MICROSECONDS_P99.search(slow_row(screen))
                               and re.search(r"· [\d,]+ idle", screen),
                               "the slow connects gone from the window, igm-idle idle",
                               timeout=60)
        ranked = [re.search(r"igm-(slow|idle)", line).group(1) for line in screen.splitlines()
                  if re.search(r"\bigm-(slow|idle)\b", line)]
        # igm-idle sent 5 MB, igm-slow a byte a connect: live first all the same.
        assert ranked == ["slow", "idle"], screen
    finally:
        if slow is not None:
            slow.terminate()
            slow.wait(10)
        gated.close()
        echo.close()
