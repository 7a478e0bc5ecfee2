"""Several gadgets in one `ig-metrics run`: built-in ones and a user's gadget
folder, one process, one Prometheus endpoint and one OTLP stream carrying
each gadget's exact counts at once; and the refusals of gadget lists that
cannot run together (exit 2, nothing attached), and of a gadget that does
not compile (exit 1, nothing left attached)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.dns_server import DnsServer
from tests.named_process import NamedProcess
from tests.receivers import free_port
from tests.tcp_workload import EchoCountServer, run_client
from tests.test_gadget_dns import KNOWN, answers_of, asking, run_queries
from tests.test_gadget_exec import RUN_MANY, programs  # noqa: F401 (a fixture)
from tests.test_gadgets_exported import (
    DNS_QUERIES,
    DNS_RESPONSES,
    EXECUTION_ERRORS,
    EXECUTIONS,
    TCP_RECEIVED,
    TCP_SENT,
    VALUE_TIMEOUT,
    Metric,
    Reading,
    exporting_run,
    gadget_program_ids,
)
from tests.test_run_e2e import IG_METRICS, write_profiles
from tests.test_user_gadget import EXAMPLE, PER_RESULT

pytestmark = [pytest.mark.bpf, pytest.mark.timeout(900)]

SIGNALS = Metric("signals.generated", "signals_generated_total")
SERIES = Metric("ig_metrics.series", "ig_metrics_series")
COMMAND = "igm-several"        # the one command --comm lets through


def test_tcp_exec_dns_and_a_gadget_folder_exact_in_one_run(tmp_path, programs):  # noqa: F811
    """--comm applies to every gadget: tcp, exec, dns (the queries of the
    command's process; the test's own queries to the same server are left
    out) and the folder."""
    folder = tmp_path / "signals"
    shutil.copytree(EXAMPLE, folder)
    target, missing, not_executable = programs
    server = EchoCountServer(reply_bytes=777)
    dns = DnsServer("127.53.0.3", {KNOWN})
    execs = NamedProcess(COMMAND, RUN_MANY, target, missing, not_executable, "6", "2", "1")
    signals = NamedProcess(COMMAND, PER_RESULT, "3", "4")
    asker = asking(COMMAND, dns.host)
    gadgets = f"tcp,exec,{folder}"
    try:
        with exporting_run(tmp_path, gadgets, "--gadget", "dns", "--comm", COMMAND) as run:
            run_client("127.0.0.1", server.port, send_bytes=4_321, name=COMMAND)
            server.wait_for(1, timeout=VALUE_TIMEOUT)
            execs.run()
            signals.run()
            answers = answers_of(asker.run())
            run_queries(dns.host)                  # by this process: left out
            mine = dict(process__command=COMMAND, tcp__connection__direction="outbound")

            def check(seen: Reading) -> list[str]:
                return [*seen.expect(TCP_SENT, 4_321, **mine),
                        *seen.expect(TCP_RECEIVED, 777, **mine),
                        # --comm: nothing but the command's own connection
                        *seen.expect(TCP_SENT, 4_321),
                        *seen.expect(EXECUTIONS, 6, process__command="igm-true"),
                        *seen.expect(EXECUTIONS, 6),
                        *seen.expect(EXECUTION_ERRORS, 3),
                        *seen.expect(SIGNALS, 7, process__command=COMMAND,
                                     signal__name="SIGUSR1"),
                        *seen.expect(DNS_QUERIES, sum(answers.values()),
                                     server__address=dns.host),
                        *seen.expect(DNS_RESPONSES, sum(answers.values()),
                                     server__address=dns.host),
                        # each gadget's own self-metrics, told apart
                        *(problem for gadget in ("tcp", "exec", "dns", "signals")
                          for problem in seen.expect(SERIES, 1, up_to=10_000,
                                                     ig_metrics__gadget=gadget))]

            run.assert_exported(check)
    finally:
        server.close()
        dns.close()
        execs.kill()
        signals.kill()
        asker.kill()


def refused(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  p: {{type: prometheus, listen: "127.0.0.1:{free_port()}"}}
profiles:
  p: {{exporters: [p]}}
""")
    return subprocess.run([IG_METRICS, "run", "--profile", "p", "--profiles-dir", str(profiles),
                           "--no-tui", "--duration", "1s", *options],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("options,message", [
    (["-g", "tcp,dsn"], "unknown gadget 'dsn'; did you mean 'dns'?"),
    (["-g", "tcp", "-g", "exec,tcp"], "gadget tcp is named twice ('tcp' and 'tcp')"),
    (["-g", "file,exec", "--param", "nope=1"], "--param nope: no gadget of this run has it"),
    (["-g", "file,syscalls", "--param", "file.path_prefix=/etc", "--sort", "nope"],
     "--sort: 'nope' is not a column of gadget file, syscalls"),
    ([], "no gadget to run: name one with --gadget"),
])
def test_gadget_lists_that_cannot_run_exit_2_and_attach_nothing(tmp_path, options, message):
    before = gadget_program_ids("tcp,exec,dns,file,syscalls")
    result = refused(tmp_path, *options)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert gadget_program_ids("tcp,exec,dns,file,syscalls") <= before


def test_a_gadget_that_reads_no_process_refuses_process_filters(tmp_path):
    """A gadget folder whose spec says why --pid/--comm/--cgroup cannot apply
    to it (`no_process_filter`): run refuses them, exit 2, nothing attached."""
    folder = tmp_path / "histprobe"
    shutil.copytree(Path(__file__).resolve().parent / "gadgets" / "histprobe", folder)
    with (folder / "gadget.yaml").open("a") as spec:
        spec.write("no_process_filter: it stands for a gadget that sees no process\n")
    result = refused(tmp_path, "-g", str(folder), "--comm", "x")
    assert result.returncode == 2, result.stderr
    assert ("--pid, --comm and --cgroup do not apply to gadget histprobe: it stands for a "
            "gadget that sees no process") in result.stderr


def test_two_gadgets_with_one_metric_name_are_refused(tmp_path):
    copy = tmp_path / "tcp-copy"
    shutil.copytree(Path(__file__).resolve().parent.parent / "ig_metrics/gadgets/tcp", copy)
    spec = copy / "gadget.yaml"
    spec.write_text(spec.read_text().replace("name: tcp\n", "name: tcpcopy\n", 1))
    result = refused(tmp_path, "-g", f"tcp,{copy}")
    assert result.returncode == 2, result.stderr
    assert "gadgets tcp and tcpcopy both define metric tcp.sent" in result.stderr


def test_a_gadget_that_does_not_compile_fails_the_start_and_leaves_nothing(tmp_path):
    broken = Path(__file__).resolve().parent / "gadgets" / "brokenc"
    before = gadget_program_ids("tcp,exec")
    result = refused(tmp_path, "-g", f"tcp,exec,{broken}")
    assert result.returncode == 1, result.stderr
    assert "gadget brokenc: the BPF program does not compile" in result.stderr
    assert "Traceback" not in result.stderr
    assert gadget_program_ids("tcp,exec") <= before
