"""`ig-metrics run` end to end, through the installed console script: real
traffic of known size, exported at once to a Prometheus endpoint (scraped by a
real Prometheus server), an OTLP/gRPC and an OTLP/HTTP receiver, with exact
values everywhere; clean stops; errors a user can act on."""

from __future__ import annotations

import ctypes
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.receivers import (
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    PrometheusServer,
    flatten,
    free_port,
    promtool_check,
    scrape,
)
from tests.tcp_workload import EchoCountServer, run_client

pytestmark = pytest.mark.bpf

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
OUR_PROGRAMS = {"on_set_state", "on_destroy", "on_send", "on_recv", "on_retransmit",
                "on_retransmit_synack", "on_send_reset", "on_receive_reset",
                "on_cgroup_mkdir"}          # attribution's recorder of new cgroups


def our_program_ids() -> set[int]:
    listed = subprocess.run(["bpftool", "prog", "list", "--json"], capture_output=True,
                            text=True, check=True).stdout
    return {entry["id"] for entry in json.loads(listed)
            if entry.get("name", "") in OUR_PROGRAMS}


def write_profiles(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "e2e.yaml").write_text(text)
    return directory


def start_run(profiles: Path, profile: str, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([IG_METRICS, "run", "--gadget", "tcp", "--profile", profile,
                             "--profiles-dir", str(profiles), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ig-metrics exited early: {process.communicate()}")
        try:
            scrape(f"http://127.0.0.1:{port}/metrics")
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def prometheus_value(text: str, metric: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(name) == value for name, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def otlp_value(receiver, metric: str, **attributes) -> object:
    for (name, attrs), value in flatten(receiver.received).items():
        if name == metric and all(dict(attrs).get(key) == wanted
                                  for key, wanted in attributes.items()):
            return value
    return None


def test_exact_bytes_reach_prometheus_otlp_grpc_and_otlp_http_at_once(tmp_path):
    prom_port = free_port()
    with OtlpGrpcReceiver() as grpc_receiver, OtlpHttpReceiver() as http_receiver:
        profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  scrape-me: {{type: prometheus, listen: "127.0.0.1:{prom_port}"}}
  collector-grpc: {{type: otlp-grpc, endpoint: "{grpc_receiver.endpoint}", insecure: true}}
  collector-http: {{type: otlp-http, endpoint: "{http_receiver.url()}"}}
profiles:
  e2e:
    exporters: [scrape-me, collector-grpc, collector-http]
    interval: 1s
""")
        before = our_program_ids()
        run = start_run(profiles, "e2e", "--no-tui", "--duration", "12s")
        server = EchoCountServer(reply_bytes=4_242)
        try:
            wait_for_port(prom_port, run)
            with PrometheusServer([f"127.0.0.1:{prom_port}"], tmp_path / "prometheus") \
                    as prometheus:
                run_client("127.0.0.1", server.port, send_bytes=987_654, name="igm-e2e")
                server.wait_for(1)
                # Series carry no process.pid by default: the client's command
                # (no other process has it) singles its series out, exactly.
                labels = {"process_command": "igm-e2e", "tcp_connection_direction": "outbound"}
                deadline = time.monotonic() + 10
                text = ""
                while time.monotonic() < deadline:
                    text, _ = scrape(f"http://127.0.0.1:{prom_port}/metrics")
                    if prometheus_value(text, "tcp_sent_bytes_total", **labels) == 987_654:
                        break
                    time.sleep(0.3)
                assert prometheus_value(text, "tcp_sent_bytes_total", **labels) == 987_654
                assert prometheus_value(text, "tcp_received_bytes_total", **labels) == 4_242
                assert promtool_check(text) == (0, "")
                assert "process_pid=" not in text
                # A real Prometheus server scraped the same numbers.
                query = 'tcp_sent_bytes_total{process_command="igm-e2e"}'
                result = prometheus.wait_for(query)
                assert float(result[0]["value"][1]) == 987_654
                quantile = prometheus.wait_for(
                    "histogram_quantile(0.5, sum by (le) (tcp_connect_duration_seconds_bucket"
                    '{process_command="igm-e2e"}))')
                assert 0 < float(quantile[0]["value"][1]) < 1
        finally:
            server.close()
            out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        assert "final reading" in err
        mine = {"process.command": "igm-e2e", "tcp.connection.direction": "outbound"}
        for receiver in (grpc_receiver, http_receiver):
            assert otlp_value(receiver, "tcp.sent", **mine) == 987_654
            assert otlp_value(receiver, "tcp.received", **mine) == 4_242
            assert otlp_value(receiver, "tcp.connections.opened", **mine) == 1
        assert our_program_ids() <= before, "programs left attached after --duration"


def test_sigterm_detaches_makes_a_final_export_and_exits_0(tmp_path):
    with OtlpGrpcReceiver() as receiver:
        profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  slow-push: {{type: otlp-grpc, endpoint: "{receiver.endpoint}", insecure: true,
              interval: 1h}}
profiles:
  e2e:
    exporters: [slow-push]
    attributes: {{opt_in: [process.pid]}}     # the client's series by its pid
""")
        before = our_program_ids()
        run = start_run(profiles, "e2e", "--no-tui")
        server = EchoCountServer()
        try:
            receiver.wait_for(1, timeout=30)    # the first export: the gadget runs
            client = run_client("127.0.0.1", server.port, send_bytes=31_337)
            server.wait_for(1)
            run.send_signal(signal.SIGTERM)
            _, err = run.communicate(timeout=30)
        finally:
            server.close()
        assert run.returncode == 0, err
        # The hourly exporter had no reason to export again but the final one.
        assert otlp_value(receiver, "tcp.sent", **{"process.pid": client.pid}) == 31_337
        assert our_program_ids() <= before


def tgkill(pid: int, tid: int, signum: int) -> None:
    """Sends a signal to one thread of another process, as the kernel may
    deliver a container runtime's SIGTERM."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


SYS_TGKILL = 234    # x86_64


def test_sigterm_to_another_thread_stops_at_once_with_a_long_interval(tmp_path):
    """Readings a minute apart: a SIGTERM taken by a thread other than the main
    one used to wait for the next reading, past a pod's grace period."""
    with OtlpGrpcReceiver() as receiver:
        profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  slow-push: {{type: otlp-grpc, endpoint: "{receiver.endpoint}", insecure: true}}
profiles:
  e2e: {{exporters: [slow-push], interval: 60s}}
""")
        before = our_program_ids()
        run = start_run(profiles, "e2e", "--no-tui")
        try:
            receiver.wait_for(1, timeout=120)    # the first export: the gadget runs
            tids = sorted(int(tid) for tid in os.listdir(f"/proc/{run.pid}/task"))
            others = [tid for tid in tids if tid != run.pid]
            assert others, "ig-metrics runs exporter threads beside the main one"
            sent = time.monotonic()
            tgkill(run.pid, others[-1], signal.SIGTERM)
            _, err = run.communicate(timeout=90)
            took = time.monotonic() - sent
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, err
        # Far less than the 60 s the main thread sleeps between readings, and
        # with the final export made (a second one).
        assert took < 30, f"stopped {took:.1f} s after the signal"
        assert len(receiver.received) >= 2
        assert our_program_ids() <= before


def test_port_in_use_names_the_exporter_and_leaves_nothing_attached(tmp_path):
    blocker = __import__("socket").create_server(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  taken: {{type: prometheus, listen: "127.0.0.1:{port}"}}
profiles:
  e2e: {{exporters: [taken]}}
""")
    before = our_program_ids()
    try:
        run = start_run(profiles, "e2e", "--no-tui")
        _, err = run.communicate(timeout=60)
    finally:
        blocker.close()
    assert run.returncode == 1
    assert "taken" in err and f"127.0.0.1:{port}" in err and "in use" in err
    assert our_program_ids() <= before


def test_unknown_gadget_lists_the_gadgets_and_exits_2(tmp_path):
    run = subprocess.run([IG_METRICS, "run", "--gadget", "tpc"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2
    assert "unknown gadget 'tpc'" in run.stderr and "did you mean 'tcp'" in run.stderr
    assert "available: " in run.stderr and "tcp" in run.stderr.split("available: ")[1]


def test_invalid_profile_is_reported_with_file_and_line_and_nothing_runs(tmp_path):
    profiles = write_profiles(tmp_path / "profiles", """
exporters:
  p: {type: prometheus, listen: "127.0.0.1:99999"}
profiles:
  e2e: {exporters: [p]}
""")
    before = our_program_ids()
    run = subprocess.run([IG_METRICS, "run", "--gadget", "tcp", "--profile", "e2e",
                          "--profiles-dir", str(profiles)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2
    assert f"{profiles / 'e2e.yaml'}:3:" in run.stderr
    assert our_program_ids() <= before


def read_pty(fd: int, until: float) -> str:
    chunks = []
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data.decode("utf-8", "replace"))
    return "".join(chunks)


def test_live_table_shows_the_traffic_and_the_exporters_in_a_terminal(tmp_path):
    prom_port = free_port()
    profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  prom-tty: {{type: prometheus, listen: "127.0.0.1:{prom_port}"}}
profiles:
  e2e: {{exporters: [prom-tty], attributes: {{opt_in: [process.pid]}}}}   # a pid column
""")
    server = EchoCountServer(reply_bytes=100)
    pid, fd = pty.fork()
    if pid == 0:      # the child: ig-metrics on a pseudo-terminal of 160 columns
        os.environ.update(COLUMNS="160", LINES="40", TERM="xterm")
        # --comm: the client's rows whatever else the machine sends meanwhile.
        os.execv(IG_METRICS, [IG_METRICS, "run", "--gadget", "tcp", "--profile", "e2e",
                              "--profiles-dir", str(profiles), "--duration", "8s",
                              "--top", "5", "--comm", "igm-tui"])
    try:
        screen = read_pty(fd, time.monotonic() + 3)
        client = run_client("127.0.0.1", server.port, send_bytes=50_000, connections=3,
                            name="igm-tui")
        server.wait_for(3)
        screen += read_pty(fd, time.monotonic() + 15)
    finally:
        server.close()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, screen[-2000:]
    # A row of the table: the client's process (its pid: the profile opts in)
    # and the server it talked to.
    rows = [line for line in screen.splitlines()
            if str(client.pid) in line and "igm-tui" in line and str(server.port) in line]
    assert rows, screen[-3000:]
    assert "prom-tty" in screen and f"127.0.0.1:{prom_port}" in screen
    assert "sent" in screen and "p50 / p99" in screen
