"""A child Python process with a chosen command name (prctl PR_SET_NAME) that
runs a known workload when told to: a test starts it, attaches a gadget (the
pid is known by then, for --pid), then lets it run. Everything the workload
needs is imported before the name is set, so that imports (which open files)
are not counted under the workload's name."""

from __future__ import annotations

import subprocess
import sys

PRELUDE = r"""
import ctypes, errno, os, signal, subprocess, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(15, sys.argv[1].encode(), 0, 0, 0)      # PR_SET_NAME: our process.command
args = sys.argv[2:]
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.readline()
"""


class NamedProcess:
    """`code` runs after "go", with `libc`, `args` and the prelude's modules;
    `prefix` runs it through a command that execs it (`ip netns exec NS`)."""

    def __init__(self, name: str, code: str, *args: str, prefix: tuple[str, ...] = ()) -> None:
        self.name = name
        self.process = subprocess.Popen([*prefix, sys.executable, "-c", PRELUDE + code, name,
                                         *args],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        self.pid = self.process.pid
        assert self.process.stdout.readline() == "ready\n", "the workload did not start"

    def run(self, timeout: float = 60) -> str:
        """Let the workload run to its end; returns what it printed."""
        out, _ = self.process.communicate("go\n", timeout=timeout)
        assert self.process.returncode == 0, f"workload {self.name} failed: {out}"
        return out

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
