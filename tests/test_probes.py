"""The agent's health endpoint (`run --health-listen`): what /readyz, /livez
and /healthz answer in each state of a run, over a real socket, and the
option's bad input. The image test asks them of the real agent in a container."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from ig_metrics.cli import app
from ig_metrics.config.addresses import HostPort
from ig_metrics.exporters.base import ExporterStatus, Health
from ig_metrics.pipeline.probes import AgentHealth, HealthServer, answer

NOW = 1000.0


def exporter(health: Health, error: str = "") -> ExporterStatus:
    return ExporterStatus(name="otlp", type="otlp-grpc", target="collector:4317",
                          health=health, interval=10.0, last_error=error)


@pytest.mark.parametrize("state, readyz, livez, healthz", [
    (AgentHealth("tcp", "starting"), 503, 200, 503),
    (AgentHealth("tcp", "attached"), 503, 503, 503),                # no reading yet
    (AgentHealth("tcp", "attached", 3, NOW - 2, 10.0, (exporter(Health.HEALTHY),)),
     200, 200, 200),
    # A failing collector: not a reason to restart, but not healthy.
    (AgentHealth("tcp", "attached", 3, NOW - 2, 10.0,
                 (exporter(Health.FAILING, "connection refused"),)), 200, 200, 503),
    (AgentHealth("tcp", "attached", 3, NOW - 2, 10.0, (exporter(Health.DEGRADED),)),
     200, 200, 200),
    # The sampler stalled: 3 intervals (at least 30 s) without a reading.
    (AgentHealth("tcp", "attached", 3, NOW - 31, 10.0), 503, 503, 503),
    (AgentHealth("tcp", "attached", 3, NOW - 29, 1.0), 200, 200, 200),
    (AgentHealth("tcp", "stopped", 9, NOW - 1), 503, 503, 503),
], ids=["starting", "attached-unread", "ready", "exporter-failing", "degraded", "stalled",
        "short-interval", "stopped"])
def test_each_endpoint_in_each_state(state, readyz, livez, healthz):
    assert [answer(path, state, NOW)[0] for path in ("/readyz", "/livez", "/healthz")] == [
        readyz, livez, healthz]


def test_the_body_says_why_one_line_per_check():
    state = AgentHealth("tcp", "attached", 3, NOW - 2, 10.0,
                        (exporter(Health.FAILING, "connection refused"),))
    status, body = answer("/healthz?verbose", state, NOW)
    assert status == 503
    assert body == ("[+]gadget tcp: attached\n"
                    "[+]3 readings, the last 2.0s ago\n"
                    "[-]exporter otlp (otlp-grpc): failing: connection refused\n"
                    "healthz check failed\n")
    assert answer("/metrics", state, NOW) is None


def test_served_over_http_from_the_state_of_the_moment():
    states = [AgentHealth("tcp", "starting")]
    server = HealthServer(HostPort("127.0.0.1", 0), lambda: states[-1])
    server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/readyz", timeout=5)
        assert refused.value.code == 503
        assert b"compiling and attaching" in refused.value.read()
        states.append(AgentHealth("tcp", "attached", 1, time.monotonic(), 10.0))
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            assert response.status == 200 and response.read().endswith(b"ok\n")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/nope", timeout=5)
        assert missing.value.code == 404
    finally:
        server.close()


def test_a_bad_health_listen_address_exits_2_before_anything_starts():
    result = CliRunner().invoke(app, ["run", "--gadget", "tcp", "--health-listen", "nowhere"])
    assert result.exit_code == 2
    assert "--health-listen" in result.output
