"""Ctrl-C and SIGTERM stop a run even when they arrive while the main thread
holds the stop event's lock (inside `stop.wait()`, between two bytecodes),
where a handler that set the event itself waited for that lock for ever: a
cluster run once ignored the SIGTERM a test sent it. The window is made here
on purpose, by holding the event's lock while the signal comes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from ig_metrics.cli.common import StopOnSignals

# In a process of its own: a handler that deadlocked would hang the test run.
CHILD = """
import os, signal, threading
from ig_metrics.cli.common import StopOnSignals
stop = threading.Event()
with StopOnSignals(stop):
    with stop._cond:                     # what stop.wait() holds for a moment
        os.kill(os.getpid(), signal.SIG{name})
        for _ in range(1000):            # the handler runs between these bytecodes
            pass
    print("stopped" if stop.wait(5) else "not stopped", flush=True)
"""


def run_child(name: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", CHILD.format(name=name)], capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_signal_while_the_stop_event_is_locked_still_stops_the_run():
    for name in ("TERM", "INT"):
        assert run_child(name)[0] == "stopped"


def test_handlers_are_put_back_and_the_relay_ends_on_exit():
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with StopOnSignals(stop) as watching:
        assert signal.getsignal(signal.SIGTERM) is not before
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    assert signal.getsignal(signal.SIGTERM) is before
    assert not watching._relay.is_alive()


# The main thread waits as a run does between readings (here a minute); the
# signal is sent to another thread, as container runtimes' SIGTERM may land.
CHILD_OTHER_THREAD = """
import signal, threading, time
from ig_metrics.cli.common import StopOnSignals
stop = threading.Event()
with StopOnSignals(stop):
    worker = threading.Thread(target=lambda: time.sleep(3), daemon=True)
    worker.start()
    started = time.monotonic()
    signal.pthread_kill(worker.ident, signal.SIG{name})
    stopped = stop.wait(60)
    print("stopped" if stopped else "not stopped", round(time.monotonic() - started, 1), flush=True)
"""


def test_a_signal_delivered_to_another_thread_stops_the_wait_at_once():
    for name in ("TERM", "INT"):
        done = subprocess.run([sys.executable, "-c", CHILD_OTHER_THREAD.format(name=name)],
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr
        verdict, waited = done.stdout.split()
        assert verdict == "stopped"
        # Not the minute the main thread would otherwise have waited.
        assert float(waited) < 30, waited


def test_other_signals_with_handlers_do_not_stop_the_run():
    stop = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    try:
        with StopOnSignals(stop):
            os.kill(os.getpid(), signal.SIGUSR1)
            assert not stop.wait(0.5)
    finally:
        signal.signal(signal.SIGUSR1, previous)
