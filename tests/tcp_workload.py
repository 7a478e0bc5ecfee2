"""Real TCP traffic of known size for the tests: a server thread in the test
process and client child processes with a known pid and command name."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

CLIENT = r"""
import ctypes, socket, sys
name, family, host, port, send_bytes, connections = sys.argv[1:7]
ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)   # PR_SET_NAME: our process.command
family = socket.AF_INET6 if family == "6" else socket.AF_INET
received = 0
for _ in range(int(connections)):
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.connect((host, int(port)))
        payload = b"x" * int(send_bytes)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += len(chunk)
print(received, flush=True)
"""


@dataclass
class ClientRun:
    pid: int
    command: str
    received: int


def run_client(host: str, port: int, *, send_bytes: int, connections: int = 1,
               name: str = "igm-client", family: int = 4,
               prefix: Sequence[str] = ()) -> ClientRun:
    """Run a client child process to completion; it sends `send_bytes` on each
    of `connections` sequential connections and reads until the server closes.
    `prefix` runs it through a command that keeps its pid (`ip netns exec`, a
    shell that enters a cgroup and execs)."""
    process = subprocess.Popen(
        [*prefix, sys.executable, "-c", CLIENT, name, str(family), host, str(port),
         str(send_bytes), str(connections)], stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, f"client failed: {out}"
    return ClientRun(process.pid, name, int(out.strip()))


class EchoCountServer:
    """A TCP server in a thread of the test process: for each connection it
    sends `reply_bytes`, reads until end of stream, and closes."""

    def __init__(self, host: str = "127.0.0.1", *, reply_bytes: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.reply_bytes = reply_bytes
        self.received = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                if self.reply_bytes:
                    conn.sendall(b"y" * self.reply_bytes)
                total = 0
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    total += len(chunk)
            with self._lock:
                self.received += total
                self.connections += 1

    def wait_for(self, connections: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.connections >= connections:
                    return
            time.sleep(0.01)
        raise AssertionError(f"server saw {self.connections} of {connections} connections")

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self._thread.join(2)
