"""README's quick start as a user runs it: `./scripts/quickstart.sh` sets the
machine up, then runs `ig-metrics run --gadget tcp --profile local`, which must
serve exact tcp metrics on 127.0.0.1:9464. Here on the host; tests/test_kernels.py
runs this same module inside a Debian 12 guest on its stock 6.1 kernel, where
the bytes come from the kprobe fallback. Deadlines are generous and every wait
polls: in a guest under QEMU's software emulation, compiling takes a minute."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.receivers import scrape
from tests.tcp_workload import EchoCountServer, run_client
from tests.test_run_e2e import prometheus_value

pytestmark = pytest.mark.bpf

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "scripts" / "quickstart.sh"
LOCAL_METRICS = "http://127.0.0.1:9464/metrics"     # the `local` profile's endpoint
SEND, REPLY = 654_321, 12_345


def poll(what: str, attempt, timeout: float, run: subprocess.Popen):
    """attempt() until it returns something other than None; fails with what
    the run printed if it exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            out, err = run.communicate()
            pytest.fail(f"quickstart exited {run.returncode} before {what}:\n{out}\n{err}")
        found = attempt()
        if found is not None:
            return found
        time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    pytest.fail(f"no {what} within {timeout:.0f} s:\n{out}\n{err}")


def scraped() -> str | None:
    try:
        return scrape(LOCAL_METRICS)[0]
    except OSError:
        return None      # not listening yet: still compiling


def test_quickstart_serves_exact_tcp_metrics() -> None:
    run = subprocess.Popen([str(QUICKSTART), "--no-tui"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        poll("scrape endpoint on 127.0.0.1:9464", scraped, 600, run)
        server = EchoCountServer(reply_bytes=REPLY)
        try:
            run_client("127.0.0.1", server.port, send_bytes=SEND, name="igm-quick")
            server.wait_for(1)
        finally:
            server.close()
        # The local profile keeps no process.pid: by its command, the client's
        # series are exact.
        labels = {"process_command": "igm-quick", "tcp_connection_direction": "outbound"}

        def exact() -> str | None:
            text = scraped() or ""
            sent = prometheus_value(text, "tcp_sent_bytes_total", **labels)
            return text if sent == SEND else None

        text = poll(f"tcp_sent_bytes_total == {SEND} for igm-quick", exact, 120, run)
        assert "process_pid=" not in text
        assert prometheus_value(text, "tcp_received_bytes_total", **labels) == REPLY
        assert prometheus_value(text, "tcp_connections_opened_total", **labels) == 1
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)     # quickstart.sh execs ig-metrics: it gets it
        out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "setup:" in out + err
