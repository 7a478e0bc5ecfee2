"""Every built-in gadget end to end, through the product's own path: the
installed `ig-metrics run` console script, one gadget per run, exporting at
once to a Prometheus endpoint (scraped here over HTTP) and to an OTLP/gRPC
receiver. Each test runs the workload of the gadget's own test module and
asserts that both exporters show exactly what happened, with the exactness
that module proves on the sampler (see each module's docstring for why the
counts are exact); then it stops the run with SIGINT, and checks the exit
code, the final OTLP export, and that no program stays attached.

These tests also run in QEMU TCG guests of older kernels, where bcc compiles
for 30-90 s and everything else is 10-20x slower: nothing here sleeps for a
fixed time or bounds how fast something happens; each wait polls until what
it waits for is there, with deadlines far beyond what a guest needs, and a
failure shows what was seen last."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dns_server import DnsServer
from tests.loopdev import loop_device
from tests.named_process import NamedProcess
from tests.receivers import HistogramSeen, OtlpGrpcReceiver, flatten, free_port, scrape
from tests.tcp_workload import EchoCountServer, run_client
from tests.test_gadget_blockio import BLOCK, DEVICE_SIZE, READS, WRITES
from tests.test_gadget_blockio import run_workload as run_blockio_workload
from tests.test_gadget_dns import KNOWN, RCODE_NAMES, TYPE_NAMES, run_queries
from tests.test_gadget_exec import RUN_MANY, programs  # noqa: F401 (a fixture)
from tests.test_gadget_file import OPENS
from tests.test_gadget_sched import play_ping_pong
from tests.test_gadget_syscalls import CALLS
from tests.test_prometheus_exporter import samples
from tests.test_run_e2e import IG_METRICS, wait_for_port, write_profiles

# Start-up (bcc's compile included), the workload and the values, the stop:
# each has a deadline of its own below, and together they exceed pytest's
# default of 300 s in a slow guest.
pytestmark = [pytest.mark.bpf, pytest.mark.timeout(900)]

STARTUP_TIMEOUT = 300.0     # the endpoint up and the first reading taken
VALUE_TIMEOUT = 60.0        # the workload's counts on both exporters
STOP_TIMEOUT = 120.0        # SIGINT to exit: detach, final reading, final exports
POLL = 0.5

PROMETHEUS, OTLP = "prometheus", "otlp"


@dataclass(frozen=True)
class Metric:
    """A gadget metric by both its names: OTLP's, and that of the Prometheus
    sample that carries its count (a counter's _total, a histogram's _count,
    as `ig-metrics gadgets describe` and docs/gadgets.md name them)."""

    otel: str
    prometheus: str


@dataclass(frozen=True)
class Reading:
    """What one exporter showed at one moment: {(name, attributes): value},
    Prometheus samples (string label values) or OTLP points (typed values,
    a histogram as HistogramSeen)."""

    exporter: str                                  # PROMETHEUS or OTLP
    series: Mapping[tuple[str, frozenset], object]

    def total(self, metric: Metric, **attributes: object) -> float:
        """Sum of the series of `metric` that carry every given attribute
        (written process__pid=..., as tests/snapshots.py does; None: the
        attribute is absent), a histogram counting its observations."""
        wanted = {name.replace("__", "."): value for name, value in attributes.items()}
        name = metric.otel
        if self.exporter == PROMETHEUS:
            name = metric.prometheus
            wanted = {key.replace(".", "_"): None if value is None else str(value)
                      for key, value in wanted.items()}
        found = 0.0
        for (series_name, labels), value in self.series.items():
            carried = dict(labels)
            if series_name == name and all(carried.get(key) == wanted_value
                                           for key, wanted_value in wanted.items()):
                found += value.count if isinstance(value, HistogramSeen) else value
        return found

    def expect(self, metric: Metric, want: int, *, up_to: int | None = None,
               **attributes: object) -> list[str]:
        """[] when the total is `want` (or from `want` to `up_to`), else what differs."""
        got = self.total(metric, **attributes)
        if want <= got <= (want if up_to is None else up_to):
            return []
        wanted = want if up_to is None else f"{want}..{up_to}"
        named = {name.replace("__", "."): value for name, value in attributes.items()}
        return [f"{self.exporter}: {metric.otel} {named} = {got:.15g}, expected {wanted}"]


# Given a reading, what is wrong with it ([]: it shows what happened).
Check = Callable[[Reading], list[str]]


def gadget_program_ids(gadget: str) -> set[int]:
    """Ids of the loaded BPF programs named as the gadget's programs (on any
    kernel: with the fallbacks) or attribution's recorder of new cgroups;
    `gadget` may name several, as --gadget does: 'tcp,exec'."""
    from ig_metrics.gadgets import resolve
    from ig_metrics.gadgets.selection import split_names
    from ig_metrics.k8s.cgrouprecorder import FUNCTION

    hooks = [hook for name in split_names([gadget]) for hook in resolve(name).hooks]
    names = {FUNCTION, *(hook.program for hook in hooks),
             *(fallback.program for hook in hooks for fallback in hook.fallback)}
    # The kernel keeps 15 bytes of a program's name (BPF_OBJ_NAME_LEN): bpftool
    # shows those, or the whole name where it reads it from the program's BTF.
    names |= {name[:15] for name in names}
    listed = subprocess.run(["bpftool", "prog", "list", "--json"], capture_output=True,
                            text=True, check=True).stdout
    return {entry["id"] for entry in json.loads(listed) if entry.get("name") in names}


@dataclass
class ExportingRun:
    process: subprocess.Popen
    log: Path                       # its stdout and stderr: a pipe nobody reads could fill
    prometheus_port: int
    receiver: OtlpGrpcReceiver
    check: Check | None = None      # the last one passed, for the final export
    stopped_at: float = 0.0         # time.monotonic() at SIGINT

    def excerpt(self) -> str:
        """The log's start (start-up, warnings) and end: between them lie
        the one-line summaries of every second."""
        lines = self.log.read_text(errors="replace").splitlines()
        if len(lines) > 25:
            lines = [*lines[:15], "...", *lines[-5:]]
        return "\n".join(lines)

    def prometheus(self) -> Reading:
        text, _ = scrape(f"http://127.0.0.1:{self.prometheus_port}/metrics")
        return Reading(PROMETHEUS, samples(text))

    def otlp(self, since: float = 0.0) -> Reading:
        """What the receiver got, the latest value of each series winning;
        only requests that arrived from `since` (time.monotonic()) on."""
        return Reading(OTLP, flatten([request for request in list(self.receiver.received)
                                      if request.arrived >= since]))

    def wait_until_attached(self) -> None:
        """The endpoint serves before the gadget is attached (exporters start
        first): only a reading's own metrics, such as ig_metrics_series, say
        that counting has begun."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        try:
            wait_for_port(self.prometheus_port, self.process, timeout=STARTUP_TIMEOUT)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.excerpt()}") from None
        while not any(name == "ig_metrics_series" for name, _ in self.prometheus().series):
            assert self.process.poll() is None, f"ig-metrics exited:\n{self.excerpt()}"
            assert time.monotonic() < deadline, f"no reading taken:\n{self.excerpt()}"
            time.sleep(POLL)

    def assert_exported(self, check: Check) -> None:
        """Polls the Prometheus endpoint and the OTLP receiver until both pass
        `check` (the counts reach them within an interval or two)."""
        deadline = time.monotonic() + VALUE_TIMEOUT
        while True:
            assert self.process.poll() is None, f"ig-metrics exited:\n{self.excerpt()}"
            problems = check(self.prometheus()) + check(self.otlp())
            if not problems:
                self.check = check
                return
            if time.monotonic() > deadline:
                pytest.fail("after {:.0f} s:\n{}\n--- ig-metrics:\n{}".format(
                    VALUE_TIMEOUT, "\n".join(problems), self.excerpt()), pytrace=False)
            time.sleep(POLL)

    def stop(self) -> None:
        self.stopped_at = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def exporting_run(tmp_path: Path, gadget: str, *options: str) -> Iterator[ExportingRun]:
    """`ig-metrics run --gadget GADGET` exporting every second to a Prometheus
    endpoint and an OTLP/gRPC receiver, attached and read once on entry. On a
    clean exit of the block: SIGINT, exit 0, the final OTLP export still
    passes the last check given to assert_exported, and none of the gadget's
    programs stays loaded."""
    port = free_port()
    with OtlpGrpcReceiver() as receiver:
        profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  scrape-me: {{type: prometheus, listen: "127.0.0.1:{port}"}}
  collector: {{type: otlp-grpc, endpoint: "{receiver.endpoint}", insecure: true}}
profiles:
  exported: {{exporters: [scrape-me, collector]}}
""")
        before = gadget_program_ids(gadget)
        log = tmp_path / "ig-metrics.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [IG_METRICS, "run", "--gadget", gadget, "--profile", "exported",
                 "--profiles-dir", str(profiles), "--no-tui", "--interval", "1s", *options],
                stdout=out, stderr=subprocess.STDOUT)
        run = ExportingRun(process, log, port, receiver)
        try:
            run.wait_until_attached()
            yield run
        finally:
            run.stop()
        assert process.returncode == 0, run.excerpt()
        assert run.check is not None, "the block checked nothing"
        # What was exported after SIGINT (the reading taken after detaching)
        # is as exact: nothing was counted twice or late.
        final = run.otlp(since=run.stopped_at)
        assert final.series, f"no OTLP export after SIGINT\n{run.excerpt()}"
        problems = run.check(final)
        assert not problems, f"the final export: {problems}\n{run.excerpt()}"
    assert gadget_program_ids(gadget) <= before, "programs left loaded after SIGINT"


# --- the gadgets' metrics, by both names ------------------------------------------
TCP_SENT = Metric("tcp.sent", "tcp_sent_bytes_total")
TCP_RECEIVED = Metric("tcp.received", "tcp_received_bytes_total")
TCP_OPENED = Metric("tcp.connections.opened", "tcp_connections_opened_total")
TCP_CLOSED = Metric("tcp.connections.closed", "tcp_connections_closed_total")
EXECUTIONS = Metric("process.executions", "process_executions_total")
EXECUTION_ERRORS = Metric("process.execution.errors", "process_execution_errors_total")
SYSCALL_CALLS = Metric("syscall.calls", "syscall_calls_total")
SYSCALL_ERRORS = Metric("syscall.errors", "syscall_errors_total")
SYSCALL_DURATION = Metric("syscall.duration", "syscall_duration_seconds_count")
FILE_OPENS = Metric("file.opens", "file_opens_total")
DISK_IO = Metric("system.disk.io", "system_disk_io_bytes_total")
DISK_OPERATIONS = Metric("system.disk.operations", "system_disk_operations_total")
BLOCK_DURATION = Metric("block.request.duration", "block_request_duration_seconds_count")
CONTEXT_SWITCHES = Metric("process.context_switches", "process_context_switches_total")
RUNQUEUE_DURATION = Metric("sched.runqueue.duration", "sched_runqueue_duration_seconds_count")
MISSED_EVENTS = Metric("ig_metrics.kernel.missed_events", "ig_metrics_kernel_missed_events_total")
DNS_QUERIES = Metric("dns.queries", "dns_queries_total")
DNS_RESPONSES = Metric("dns.responses", "dns_responses_total")
DNS_DURATION = Metric("dns.lookup.duration", "dns_lookup_duration_seconds_count")


def test_tcp_bytes_and_connections_of_one_client(tmp_path):
    """tests/test_tcp_gadget.py's exactness: a client process's bytes both
    ways and its connections; the server side (this process) on the port.
    Series carry no process.pid by default: by command they are exact."""
    connections, send, reply = 3, 54_321, 1_234
    server = EchoCountServer(reply_bytes=reply)
    try:
        with exporting_run(tmp_path, "tcp") as run:
            client = run_client("127.0.0.1", server.port, send_bytes=send,
                                connections=connections, name="igm-tcp-exp")
            server.wait_for(connections, timeout=VALUE_TIMEOUT)
            assert client.received == connections * reply
            outbound = dict(process__pid=None, process__command="igm-tcp-exp",
                            server__port=server.port, network__peer__address="127.0.0.1",
                            tcp__connection__direction="outbound")
            # This process has other connections (the scrapes, the receiver's):
            # the server's port singles its inbound ones out.
            inbound = dict(server__port=server.port, tcp__connection__direction="inbound")

            def check(seen: Reading) -> list[str]:
                return [*seen.expect(TCP_SENT, connections * send, **outbound),
                        *seen.expect(TCP_RECEIVED, connections * reply, **outbound),
                        *seen.expect(TCP_OPENED, connections, **outbound),
                        *seen.expect(TCP_CLOSED, connections, **outbound),
                        *seen.expect(TCP_RECEIVED, connections * send, **inbound),
                        *seen.expect(TCP_SENT, connections * reply, **inbound),
                        *seen.expect(TCP_OPENED, connections, **inbound),
                        *seen.expect(TCP_CLOSED, connections, **inbound)]

            run.assert_exported(check)
    finally:
        server.close()


def test_exec_successes_and_failures_by_errno(tmp_path, programs):  # noqa: F811
    """tests/test_gadget_exec.py's exactness, under --comm of the parent: N
    execs of a binary no other process has, M failures by errno, and nothing
    else counted."""
    target, missing, not_executable = programs
    workload = NamedProcess("igm-exec-exp", RUN_MANY, target, missing, not_executable,
                            "10", "3", "2")
    try:
        with exporting_run(tmp_path, "exec", "--comm", "igm-exec-exp") as run:
            workload.run()

            def check(seen: Reading) -> list[str]:
                parent = dict(process__parent__command="igm-exec-exp")
                return [*seen.expect(EXECUTIONS, 10, process__command="igm-true", **parent),
                        *seen.expect(EXECUTION_ERRORS, 3, error__type="ENOENT",
                                     process__command="igm-missing", **parent),
                        *seen.expect(EXECUTION_ERRORS, 2, error__type="EACCES",
                                     process__command="igm-noexec", **parent),
                        *seen.expect(EXECUTIONS, 10),
                        *seen.expect(EXECUTION_ERRORS, 5)]

            run.assert_exported(check)
    finally:
        workload.kill()


def test_syscalls_of_one_command(tmp_path):
    """tests/test_gadget_syscalls.py's exactness, under --comm: 1234 getppid()
    (each with one latency) and 37 close(-1) failing with EBADF; a process of
    another name doing the same is left out."""
    counted = NamedProcess("igm-sys-exp", CALLS, "1234", "37")
    other = NamedProcess("igm-sys-other", CALLS, "500", "5")
    try:
        with exporting_run(tmp_path, "syscalls", "--comm", "igm-sys-exp") as run:
            counted.run()
            other.run()

            def check(seen: Reading) -> list[str]:
                return [*seen.expect(SYSCALL_CALLS, 1234, syscall__name="getppid"),
                        *seen.expect(SYSCALL_DURATION, 1234, syscall__name="getppid"),
                        *seen.expect(SYSCALL_ERRORS, 37, syscall__name="close",
                                     error__type="EBADF"),
                        *seen.expect(SYSCALL_ERRORS, 0, syscall__name="getppid")]

            run.assert_exported(check)
    finally:
        counted.kill()
        other.kill()


def test_file_opens_of_one_command_by_result(tmp_path):
    """tests/test_gadget_file.py's exactness, under --comm: opens that
    succeed (no error.type), fail with ENOENT or with EISDIR, and nothing else."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "present").write_text("x")
    workload = NamedProcess("igm-file-exp", OPENS, str(files / "present"),
                            str(files / "missing"), str(files), "12", "5", "3")
    try:
        with exporting_run(tmp_path, "file", "--comm", "igm-file-exp") as run:
            workload.run()

            def check(seen: Reading) -> list[str]:
                mine = dict(process__command="igm-file-exp", file__path=None)
                # 12 opens of the file, and /etc/hostname once
                return [*seen.expect(FILE_OPENS, 13, error__type=None, **mine),
                        *seen.expect(FILE_OPENS, 5, error__type="ENOENT", **mine),
                        *seen.expect(FILE_OPENS, 3, error__type="EISDIR", **mine),
                        *seen.expect(FILE_OPENS, 21)]

            run.assert_exported(check)
    finally:
        workload.kill()


def test_blockio_bytes_and_requests_of_a_loop_device(tmp_path):
    """tests/test_gadget_blockio.py's exactness: O_DIRECT writes and reads of
    known size, an fsync and a discard on a loop device only the test uses,
    checked against the kernel's own counters of the device."""
    with loop_device(tmp_path, DEVICE_SIZE) as device:
        kernel_before = device.settle()
        with exporting_run(tmp_path, "blockio") as run:
            run_blockio_workload(device, "igm-blockio")
            kernel_after = device.settle()
            kernel = {name: kernel_after[name] - kernel_before[name] for name in kernel_before}
            # Nothing but the workload used the device, or the comparisons below
            # would blame the gadget for someone else's I/O.
            assert kernel["write_sectors"] * 512 == WRITES * BLOCK, kernel
            assert kernel["read_sectors"] * 512 == READS * BLOCK, kernel
            assert kernel["discard_ios"] >= 1, kernel

            def check(seen: Reading) -> list[str]:
                def on(direction: str) -> dict[str, str]:
                    return dict(system__device=device.name, disk__io__direction=direction)

                return [
                    *seen.expect(DISK_IO, WRITES * BLOCK, **on("write")),
                    *seen.expect(DISK_IO, READS * BLOCK, **on("read")),
                    *seen.expect(DISK_IO, 0, **on("discard")),   # nothing is transferred
                    *(problem for direction in ("read", "write", "discard", "flush")
                      for problem in seen.expect(DISK_OPERATIONS, kernel[f"{direction}_ios"],
                                                 **on(direction))),
                    # The fsync's empty preflush write is finished without being
                    # issued: it has no latency.
                    *seen.expect(BLOCK_DURATION, WRITES, **on("write")),
                    *seen.expect(BLOCK_DURATION, kernel["write_ios"] - kernel["flush_ios"],
                                 **on("write")),
                    *seen.expect(BLOCK_DURATION, READS, **on("read")),
                    *seen.expect(BLOCK_DURATION, kernel["flush_ios"], **on("flush")),
                    *seen.expect(BLOCK_DURATION, kernel["discard_ios"], **on("discard"))]

            run.assert_exported(check)


def test_sched_context_switches_match_the_kernels_counts(tmp_path):
    """tests/test_gadget_sched.py's exactness: two processes of unique names
    play ping-pong on one CPU; each one's switches, by type, lie between the
    kernel's own counts (/proc/self/status) taken inside and outside its name,
    and it waited in a run queue once per switch."""
    rounds = 500
    with exporting_run(tmp_path, "sched") as run:
        seen_by_kernel = play_ping_pong(rounds, f"x{os.getpid() % 100000}")
        for name, kernel in seen_by_kernel.items():
            assert sum(kernel["inner"]) >= rounds - 1, f"{name} hardly switched: {kernel}"

        def check(seen: Reading) -> list[str]:
            # Counts falling short for want of runs would look like a gadget bug.
            problems = seen.expect(MISSED_EVENTS, 0)
            for name, kernel in seen_by_kernel.items():
                for index, kind in enumerate(("voluntary", "involuntary")):
                    problems += seen.expect(CONTEXT_SWITCHES, kernel["inner"][index],
                                            up_to=kernel["outer"][index],
                                            process__command=name,
                                            process__context_switch_type=kind)
                switches = seen.total(CONTEXT_SWITCHES, process__command=name)
                problems += seen.expect(RUNQUEUE_DURATION, int(switches),
                                        process__command=name)
            return problems

        run.assert_exported(check)


def test_dns_queries_and_responses_to_a_local_server(tmp_path):
    """tests/test_gadget_dns.py's exactness: the test's own DNS server on a
    loopback address nobody else uses; each query and response counted once
    by type and response code, each with one latency."""
    server = DnsServer("127.53.0.2", {KNOWN})
    try:
        with exporting_run(tmp_path, "dns") as run:
            answers = run_queries(server.host)
            queries: Counter[int] = Counter()
            for (qtype, _), count in answers.items():
                queries[qtype] += count

            def check(seen: Reading) -> list[str]:
                mine = dict(server__address=server.host, network__type="ipv4")
                problems = [
                    *seen.expect(DNS_QUERIES, sum(answers.values()), **mine),
                    # a query has no response code: the attribute is left out
                    *seen.expect(DNS_QUERIES, sum(answers.values()), dns__response_code=None,
                                 **mine),
                    *seen.expect(DNS_RESPONSES, sum(answers.values()), **mine)]
                for qtype, count in queries.items():
                    problems += seen.expect(DNS_QUERIES, count,
                                            dns__question__type=TYPE_NAMES[qtype], **mine)
                for (qtype, rcode), count in answers.items():
                    answer = dict(dns__question__type=TYPE_NAMES[qtype],
                                  dns__response_code=RCODE_NAMES[rcode], **mine)
                    problems += seen.expect(DNS_RESPONSES, count, **answer)
                    problems += seen.expect(DNS_DURATION, count, **answer)
                return problems

            run.assert_exported(check)
    finally:
        server.close()
