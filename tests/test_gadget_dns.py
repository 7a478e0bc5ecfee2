"""The dns gadget against the real kernel: a DNS server of the test's own on
loopback (and one in a network namespace behind a veth pair) answers NOERROR
for one name and NXDOMAIN for another; a client sends a known number of
queries of known types, one at a time, each waiting for its answer.

Why the assertions are exact: every series is keyed by the server's address,
which only the test's servers use, and each query and response crosses the
host's network stack exactly once (loopback shows each packet twice, sent and
received: the gadget counts one). Each query waits for its response, so each
response matches its query and gives one latency."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ig_metrics.gadgets.decoders import DECODERS
from tests.dns_server import AAAA, MX, NOERROR, NXDOMAIN, TXT, A, DnsServer, ask
from tests.snapshots import points, total

KNOWN = "ok.igm.test"
UNKNOWN = "missing.igm.test"
# (name, type, how many): 14 queries, 8 NOERROR and 6 NXDOMAIN
WORKLOAD = [(KNOWN, A, 5), (KNOWN, AAAA, 3), (UNKNOWN, A, 4), (UNKNOWN, TXT, 2)]
TYPE_NAMES = {A: "A", AAAA: "AAAA", TXT: "TXT", MX: "MX"}
RCODE_NAMES = {NOERROR: "NOERROR", NXDOMAIN: "NXDOMAIN"}
ROOT = Path(__file__).resolve().parent.parent


def run_queries(server: str, workload=WORKLOAD) -> Counter:
    """Asks every query of the workload; returns the answers by (type, rcode)."""
    answers: Counter = Counter()
    query_id = 1000
    for name, qtype, count in workload:
        for _ in range(count):
            query_id += 1
            answers[(qtype, ask(server, name, qtype, query_id))] += 1
    return answers


@pytest.fixture
def dns_gadget(bpf_available):
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    spec = resolve("dns")
    program = GadgetProgram(spec)
    program.load()
    program.attach()
    yield Sampler(spec, program, resource=(), idle_expiry=0)
    program.close()


def assert_counted_exactly(snapshot, server: str, answers: Counter, network_type: str) -> None:
    mine = dict(server__address=server)
    queries = Counter()
    for (qtype, _), count in answers.items():
        queries[qtype] += count
    for qtype, count in queries.items():
        assert total(snapshot, "dns.queries", dns__question__type=TYPE_NAMES[qtype],
                     **mine) == count, TYPE_NAMES[qtype]
    for (qtype, rcode), count in answers.items():
        labels = dict(dns__question__type=TYPE_NAMES[qtype],
                      dns__response_code=RCODE_NAMES[rcode], **mine)
        assert total(snapshot, "dns.responses", **labels) == count, labels
        assert total(snapshot, "dns.lookup.duration", **labels) == count, labels
    assert total(snapshot, "dns.queries", **mine) == sum(answers.values())
    assert total(snapshot, "dns.responses", **mine) == sum(answers.values())
    # a query has no response code: the attribute is left out, not empty
    for point in points(snapshot, "dns.queries", **mine):
        attributes = dict(point.attributes)
        assert "dns.response_code" not in attributes
        assert attributes["network.type"] == network_type
    for point in points(snapshot, "dns.lookup.duration", **mine):
        assert 0 < point.value.sum < point.value.count * 5.0   # seconds, each under 5


@pytest.mark.bpf
def test_queries_and_responses_over_loopback_are_counted_once(dns_gadget):
    server = DnsServer("127.53.0.1", {KNOWN})
    try:
        answers = run_queries(server.host)
    finally:
        server.close()
    assert answers == Counter({(A, NOERROR): 5, (AAAA, NOERROR): 3, (A, NXDOMAIN): 4,
                               (TXT, NXDOMAIN): 2})
    assert_counted_exactly(dns_gadget.tick(), server.host, answers, "ipv4")


@pytest.mark.bpf
def test_queries_over_ipv6_loopback(dns_gadget):
    server = DnsServer("::1", {KNOWN})
    try:
        answers = run_queries("::1", [(KNOWN, MX, 2), (UNKNOWN, AAAA, 3)])
    finally:
        server.close()
    assert answers == Counter({(MX, NOERROR): 2, (AAAA, NXDOMAIN): 3})
    assert_counted_exactly(dns_gadget.tick(), "::1", answers, "ipv6")


@pytest.fixture
def server_behind_veth():
    """A DNS server in a network namespace of its own, reached from this one
    over a veth pair on 10.231.9.0/30: queries leave through an interface and
    responses arrive through it, the path a real resolver's packets take."""
    namespace, host_end = f"igm-dns-{os.getpid()}", f"igm-dns{os.getpid() % 100000}"
    host_ip, server_ip = "10.231.9.1", "10.231.9.2"
    commands = [
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
         "netns", namespace],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_end],
        ["ip", "link", "set", host_end, "up"],
        ["ip", "-n", namespace, "addr", "add", f"{server_ip}/30", "dev", "eth0"],
        ["ip", "-n", namespace, "link", "set", "eth0", "up"],
        ["ip", "-n", namespace, "link", "set", "lo", "up"],
    ]
    server = None
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.dns_server",
             server_ip, KNOWN], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "serving"
        yield server_ip
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


@pytest.mark.bpf
def test_queries_through_an_interface_are_counted_once(dns_gadget, server_behind_veth):
    answers = run_queries(server_behind_veth)
    time.sleep(0.05)
    assert_counted_exactly(dns_gadget.tick(), server_behind_veth, answers, "ipv4")


def test_process_filters_are_refused_before_anything_compiles():
    from ig_metrics.bpf.filters import ProcessFilter
    from ig_metrics.bpf.loader import GadgetLoadError, GadgetProgram
    from ig_metrics.gadgets import resolve

    program = GadgetProgram(resolve("dns"), process_filter=ProcessFilter(comm="dig"))
    with pytest.raises(GadgetLoadError, match="gadget dns: --pid, --comm and --cgroup do not "
                                              "apply to it: the dns gadget reads packets"):
        program.load()
    assert program.bpf is None


def test_query_types_decode_to_their_mnemonics():
    decode = DECODERS["dns_qtype"]
    assert [decode(number, {}, None, None) for number in (1, 28, 65, 255, 257)] == \
        ["A", "AAAA", "HTTPS", "ANY", "CAA"]
    assert decode(4242, {}, None, None) == "TYPE4242"     # RFC 3597's notation


def test_describe_shows_every_metric_and_says_where_it_reads_from():
    import json

    from typer.testing import CliRunner

    from ig_metrics.cli import app

    data = json.loads(CliRunner().invoke(app, ["gadgets", "describe", "dns", "-o", "json"])
                      .output)
    metrics = {metric["name"]: metric for metric in data["metrics"]}
    assert list(metrics) == ["dns.queries", "dns.responses", "dns.lookup.duration"]
    for metric in metrics.values():
        assert metric["attributes"] == ["server.address", "network.type", "dns.question.type",
                                        "dns.response_code"]
    assert data["hooks"] == [{"program": "on_packet", "kind": "socket_filter", "target": "all",
                              "metrics": ["dns.queries", "dns.responses",
                                          "dns.lookup.duration"]}]
    assert "socket filter program on an AF_PACKET socket" in " ".join(data["description"].split())
