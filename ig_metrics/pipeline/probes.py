"""The agent's health endpoint (`ig-metrics run --health-listen HOST:PORT`),
for the kubelet's probes and for people, in the style of Kubernetes' own:

    /readyz   200 once every gadget is attached and the first reading is taken;
              503 before (compiling, attaching) and from the moment it stops
    /livez    503 only when a restart would help: the run has stopped, or the
              sampler has not read the kernel for STALLED_AFTER intervals.
              A failing exporter does not count: restarting cannot bring a
              collector back, and would lose what is counted
    /healthz  the gadgets and every exporter: 503 also while an exporter fails
              or a gadget's reading does

Each answers with one `[+]` or `[-]` line per check, then `ok` or why not.
The agent may serve more paths beside them (its /summary for the cluster CLI)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ig_metrics.config.addresses import HostPort
from ig_metrics.exporters.base import ExporterStatus, Health

STALLED_AFTER = 3          # intervals without a reading before /livez says so
MIN_STALL_SECONDS = 30.0   # however short the interval: a busy node may be slow


@dataclass(frozen=True, slots=True)
class AgentHealth:
    """What the agent says about itself, at one moment."""

    gadget: str
    phase: str                          # "starting", "attached" or "stopped"
    readings: int = 0
    last_reading: float | None = None   # time.monotonic() of the last reading
    tick_interval: float = 10.0
    exporters: Sequence[ExporterStatus] = ()
    # (gadget, why its last read failed, or ""): a run may hold several gadgets
    gadgets: Sequence[tuple[str, str]] = ()


Check = tuple[bool, str]


def gadget_checks(state: AgentHealth, now: float) -> list[Check]:
    if state.phase == "starting":
        return [(False, f"gadget {state.gadget}: compiling and attaching")]
    if state.phase == "stopped":
        return [(False, f"gadget {state.gadget}: stopped, programs detached")]
    checks = [(True, f"gadget {state.gadget}: attached")]
    if state.last_reading is None:
        checks.append((False, "no reading of the kernel's counts yet"))
        return checks
    age = now - state.last_reading
    stalled = max(STALLED_AFTER * state.tick_interval, MIN_STALL_SECONDS)
    checks.append((age < stalled, f"{state.readings} readings, the last {age:.1f}s ago"
                   + ("" if age < stalled else f" (more than {stalled:g}s: stalled)")))
    return checks


def read_checks(state: AgentHealth) -> list[Check]:
    """A gadget whose reading fails (the others go on): /healthz only, as a
    restart would not give the kernel what it refuses."""
    return [(False, f"gadget {name}: reading fails: {failure}")
            for name, failure in state.gadgets if failure]


def exporter_checks(state: AgentHealth) -> list[Check]:
    return [(status.health is not Health.FAILING,
             f"exporter {status.name} ({status.type}): {status.health.value}"
             + (f": {status.last_error}" if status.health is Health.FAILING
                and status.last_error else ""))
            for status in state.exporters]


def answer(path: str, state: AgentHealth, now: float) -> tuple[int, str] | None:
    """(HTTP status, body) for an endpoint's path, None for another path."""
    name = path.split("?", 1)[0].rstrip("/")
    checks = gadget_checks(state, now)
    if name == "/readyz":
        pass
    elif name == "/livez":
        # Starting is alive: compiling may take a while on a loaded node.
        checks = [(ok or state.phase == "starting", text) for ok, text in checks]
    elif name == "/healthz":
        checks += read_checks(state) + exporter_checks(state)
    else:
        return None
    failed = [text for ok, text in checks if not ok]
    lines = [f"[{'+' if ok else '-'}]{text}" for ok, text in checks]
    verdict = f"{name[1:]} check failed" if failed else "ok"
    return (503 if failed else 200), "\n".join([*lines, verdict]) + "\n"


# path -> a function of the request's query string: (HTTP status, body, content type)
Route = Callable[[str], tuple[int, bytes, str]]
TEXT = "text/plain; charset=utf-8"


class HealthServer:
    """Serves the three endpoints, and `routes`, in a daemon thread until close()."""

    def __init__(self, address: HostPort, state: Callable[[], AgentHealth],
                 routes: Mapping[str, Route] | None = None) -> None:
        self.address = address
        family = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)[0][0]
        extra = dict(routes or {})
        known = ", ".join(["/readyz", "/livez", "/healthz", *extra])

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                route = extra.get(path.rstrip("/"))
                if route is not None:
                    status, payload, content_type = route(query)
                else:
                    result = answer(self.path, state(), time.monotonic())
                    status, body = result or (404, f"not found: {known}\n")
                    payload, content_type = body.encode(), TEXT
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args) -> None:
                """A probe every few seconds is not worth a log line each."""

        class Server(http.server.ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self._server = Server((address.host, address.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="health-endpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
