"""The dns gadget against the real kernel: a DNS server of the test's own on
loopback (and one in a network namespace behind a veth pair) answers NOERROR
for one name and NXDOMAIN for another; a client sends a known number of
queries of known types, one at a time, each waiting for its answer.

Why the assertions are exact: every series is keyed by the server's address,
which only the test's servers use, and each query and response enters the
host's network namespace once (loopback shows each packet twice, sent and
received; a forwarded packet is seen arriving and leaving: the gadget counts
one). Each query waits for its response, so each response matches its query
and gives one latency. Queries made by a process of a name no other process
has are counted under that name and its pid, and nothing else is."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from ig_metrics.gadgets.decoders import DECODERS
from tests.dns_server import AAAA, MX, NOERROR, NXDOMAIN, TXT, A, DnsServer, ask
from tests.named_process import NamedProcess
from tests.snapshots import CONTAINER_ATTRIBUTES, points, total

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


# A NamedProcess that asks args[1] the queries of args[2:] ("NAME/TYPE/COUNT")
# as run_queries does (a socket of its own per query, sendto()), and prints
# the answers by (type, rcode). args[0]: this checkout, for tests.dns_server.
ASK = r"""
import json
sys.path.insert(0, args[0])
from tests.dns_server import ask
answers, query_id = {}, 2000
for query in args[2:]:
    name, qtype, count = query.split("/")
    for _ in range(int(count)):
        query_id += 1
        answer = f"{qtype}/{ask(args[1], name, int(qtype), query_id)}"
        answers[answer] = answers.get(answer, 0) + 1
print(json.dumps(answers))
"""

# The same through the C library's resolver (glibc: a connected socket, the A
# and AAAA queries of a name sent at once), for each name of args.
GETADDRINFO = r"""
import socket
for name in args:
    try:
        socket.getaddrinfo(name, None)
    except socket.gaierror:
        pass          # NXDOMAIN, or no address in a NOERROR answer
"""


def asking(name: str, server: str, workload=WORKLOAD, prefix: tuple[str, ...] = ()
           ) -> NamedProcess:
    return NamedProcess(name, ASK, str(ROOT), server,
                        *(f"{query}/{qtype}/{count}" for query, qtype, count in workload),
                        prefix=prefix)


def answers_of(output: str) -> Counter:
    """What an ASK process printed, as run_queries returns it."""
    return Counter({tuple(int(part) for part in key.split("/")): count
                    for key, count in json.loads(output).items()})


def attach_dns(process_filter=None, attribution=None):
    """The dns gadget loaded and attached, and its sampler."""
    from ig_metrics.bpf.filters import ProcessFilter
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    spec = resolve("dns")
    program = GadgetProgram(spec, process_filter=process_filter or ProcessFilter())
    program.load()
    try:
        program.attach()
    except BaseException:
        program.close()
        raise
    return program, Sampler(spec, program, resource=(), idle_expiry=0,
                            attribution=attribution)


@pytest.fixture
def dns_gadget(bpf_available):
    program, sampler = attach_dns()
    yield sampler
    program.close()


def assert_counted_exactly(snapshot, server: str, answers: Counter, network_type: str,
                           **asker) -> None:
    """Every query to `server` and its answer counted once, by type and
    response code, each with its latency; with `asker` (process__command=...),
    all of them under it."""
    mine = dict(server__address=server, **asker)
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
    assert total(snapshot, "dns.queries", server__address=server) == sum(answers.values())
    assert total(snapshot, "dns.responses", server__address=server) == sum(answers.values())
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
    host_ip, server_ip = "10.231.9.1", "10.231.9.2"
    server = None
    with veth_namespace("igm-dns", host_ip, server_ip) as namespace:
        try:
            server = subprocess.Popen(
                ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.dns_server",
                 server_ip, KNOWN], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            assert server.stdout.readline().strip() == "serving"
            yield server_ip
        finally:
            if server is not None:
                server.kill()
                server.wait()


@contextmanager
def veth_namespace(name: str, host_ip: str, inner_ip: str, *, routed: bool = False):
    """A network namespace (its name: `name` and this pid) joined to this one by
    a veth pair on a /30: `host_ip` on this end, `inner_ip` on its eth0 (and,
    `routed`, its default route through this end); removed on exit."""
    namespace, host_end = f"{name}-{os.getpid()}", f"{name}{os.getpid() % 100000}"
    commands = [
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
         "netns", namespace],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_end],
        ["ip", "link", "set", host_end, "up"],
        ["ip", "-n", namespace, "addr", "add", f"{inner_ip}/30", "dev", "eth0"],
        ["ip", "-n", namespace, "link", "set", "eth0", "up"],
        ["ip", "-n", namespace, "link", "set", "lo", "up"],
        *([["ip", "-n", namespace, "route", "add", "default", "via", host_ip]]
          if routed else []),
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        yield namespace
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


@pytest.mark.bpf
def test_queries_through_an_interface_are_counted_once(dns_gadget, server_behind_veth):
    answers = run_queries(server_behind_veth)
    time.sleep(0.05)
    assert_counted_exactly(dns_gadget.tick(), server_behind_veth, answers, "ipv4")


@pytest.mark.bpf
def test_a_query_is_counted_under_the_process_that_asked(dns_gadget):
    """Over IPv4 and IPv6: each query of a process of a name no other
    process has, its answer and latency, under its process.command and
    process.pid (taken at the route lookup of each sendto())."""
    v4, v6 = DnsServer("127.53.0.5", {KNOWN}), DnsServer("::1", {KNOWN})
    askers = [(asking("igm-dns-ask4", v4.host), v4, "ipv4"),
              (asking("igm-dns-ask6", v6.host, [(KNOWN, MX, 2), (UNKNOWN, AAAA, 3)]), v6,
               "ipv6")]
    try:
        answered = [(answers_of(asker.run()), asker, server, network_type)
                    for asker, server, network_type in askers]
    finally:
        v4.close()
        v6.close()
        for asker, _, _ in askers:
            asker.kill()
    snapshot = dns_gadget.tick()
    for answers, asker, server, network_type in answered:
        assert answers == server.answers
        assert_counted_exactly(snapshot, server.host, answers, network_type,
                               process__command=asker.name, process__pid=asker.pid)


@pytest.mark.bpf
def test_comm_filter_keeps_the_queries_of_that_process(bpf_available):
    """--comm: the queries of the named process, their answers and
    latencies; another process asking the same server is left out."""
    from ig_metrics.bpf.filters import ProcessFilter

    server = DnsServer("127.53.0.6", {KNOWN})
    kept = asking("igm-dns-keep", server.host)
    dropped = asking("igm-dns-drop", server.host, [(KNOWN, A, 7), (UNKNOWN, TXT, 4)])
    program = None
    try:
        program, sampler = attach_dns(ProcessFilter(comm="igm-dns-keep"))
        answers = answers_of(kept.run())
        answers_of(dropped.run())
        snapshot = sampler.tick()
    finally:
        if program is not None:
            program.close()
        server.close()
        kept.kill()
        dropped.kill()
    assert server.answered == sum(answers.values()) + 11
    assert_counted_exactly(snapshot, server.host, answers, "ipv4",
                           process__command="igm-dns-keep", process__pid=kept.pid)


@pytest.fixture
def pod_network():
    """STANDS IN FOR A POD with a network of its own, as a CNI plugin and the
    kubelet set one up: a network namespace joined to this one (the node's)
    by a veth pair on 10.231.9.4/30, its resolv.conf (`ip netns exec` mounts
    /etc/netns/NAME/resolv.conf) naming a DNS server on the node's end."""
    host_ip, pod_ip = "10.231.9.5", "10.231.9.6"
    with veth_namespace("igm-pod", host_ip, pod_ip, routed=True) as namespace:
        resolv = Path("/etc/netns") / namespace / "resolv.conf"
        try:
            resolv.parent.mkdir(parents=True, exist_ok=True)
            resolv.write_text(f"nameserver {host_ip}\noptions timeout:5 attempts:1\n")
            yield namespace, host_ip
        finally:
            resolv.unlink(missing_ok=True)
            if resolv.parent.exists():
                resolv.parent.rmdir()


@pytest.mark.bpf
def test_a_pods_lookups_are_counted_once_under_its_process_and_container(bpf_available,
                                                                         pod_network):
    """A process in the pod's network namespace and in a kubelet-named
    container cgroup resolves names with the C library (a connected socket,
    A and AAAA at once) through a server on the node: the node's packet
    socket sees the pod's packets on the host end of its veth, and counts
    each once, under the process, its container and its pod."""
    from ig_metrics.k8s.attribution import start_attribution
    from tests.kubelet_cgroups import make_kubelet_container

    namespace, host_ip = pod_network
    server = DnsServer(host_ip, {KNOWN})
    container = make_kubelet_container()
    attribution = start_attribution(environ={})
    asker = NamedProcess("igm-dns-pod", GETADDRINFO, KNOWN, UNKNOWN, KNOWN,
                         prefix=("ip", "netns", "exec", namespace))
    program = None
    try:
        container.procs.write_text(str(asker.pid))
        program, sampler = attach_dns(attribution=attribution)
        asker.run()
        snapshot = sampler.tick()
    finally:
        if program is not None:
            program.close()
        attribution.close()
        asker.kill()
        server.close()
        container.remove()
    # glibc asks A and AAAA for each name: 6 queries, each answered
    assert sum(server.answers.values()) == 6, server.answers
    assert {qtype for qtype, _ in server.answers} == {A, AAAA}
    assert_counted_exactly(snapshot, host_ip, server.answers, "ipv4",
                           process__command="igm-dns-pod", process__pid=asker.pid,
                           container__id=container.container_id,
                           k8s__pod__uid=container.pod_uid)


CLONE_NEWNET = 0x40000000


@contextmanager
def in_network_namespace(name: str):
    """Sockets this thread makes in the block are made in network namespace
    `name` (setns(2) changes the calling thread's only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{name}") as there:
        if libc.setns(there.fileno(), CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f"setns to {name}")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), "setns back")


SERVICE_IP = "10.96.0.10"


@pytest.fixture
def node_with_a_dns_service(bpf_available):
    """STANDS IN FOR A NODE whose pods reach the cluster's DNS through a
    Service: a network namespace (the node's) routing between two pods'
    namespaces over veth pairs (10.231.10.0/30 and .4/30), with the
    destination NAT kube-proxy writes for the Service address
    (SERVICE_IP:53 -> the DNS pod), and the DNS server in its pod. Yields
    (node namespace, client pod namespace, DNS pod address)."""
    tag = os.getpid() % 100000
    node, client, dns = f"igm-node-{tag}", f"igm-cli-{tag}", f"igm-dnspod-{tag}"
    commands = [["ip", "netns", "add", name] for name in (node, client, dns)]
    for pod, host_end, node_ip, pod_ip in ((client, f"igmc{tag}", "10.231.10.1", "10.231.10.2"),
                                           (dns, f"igmd{tag}", "10.231.10.5", "10.231.10.6")):
        commands += [
            ["ip", "link", "add", host_end, "netns", node, "type", "veth", "peer", "name",
             "eth0", "netns", pod],
            ["ip", "-n", node, "addr", "add", f"{node_ip}/30", "dev", host_end],
            ["ip", "-n", node, "link", "set", host_end, "up"],
            ["ip", "-n", pod, "addr", "add", f"{pod_ip}/30", "dev", "eth0"],
            ["ip", "-n", pod, "link", "set", "eth0", "up"],
            ["ip", "-n", pod, "link", "set", "lo", "up"],
            ["ip", "-n", pod, "route", "add", "default", "via", node_ip]]
    dns_ip = "10.231.10.6"
    commands += [
        ["ip", "-n", node, "link", "set", "lo", "up"],
        ["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
        ["ip", "netns", "exec", node, "nft", "add", "table", "ip", "igm"],
        ["ip", "netns", "exec", node, "nft", "add", "chain", "ip", "igm", "prerouting",
         "{ type nat hook prerouting priority -100; }"],
        ["ip", "netns", "exec", node, "nft", "add", "rule", "ip", "igm", "prerouting",
         "ip", "daddr", SERVICE_IP, "udp", "dport", "53", "dnat", "to", dns_ip]]
    server = None
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, text=True)
        server = serve_dns(dns, dns_ip)
        yield node, client, dns_ip
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for name in (client, dns, node):    # a namespace takes its veth ends along
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def serve_dns(namespace: str, address: str) -> subprocess.Popen:
    """tests.dns_server on `address` in network namespace `namespace`."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.dns_server", address,
         KNOWN], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "serving"
    return server


@pytest.fixture
def node_with_a_bridge(bpf_available):
    """STANDS IN FOR A NODE whose pods are ports of a bridge (a bridge CNI
    plugin, flannel's cni0, docker0): a network namespace (the node's) with a
    bridge on 10.231.11.0/24 that has the node's address, two pods' network
    namespaces joined to it by veth pairs, and a DNS server on the node's
    address and in the second pod. Yields (node namespace, client pod
    namespace, node address, DNS pod address)."""
    tag = os.getpid() % 100000
    node, client, dns = f"igm-bnode-{tag}", f"igm-bcli-{tag}", f"igm-bdns-{tag}"
    node_ip = "10.231.11.1"
    commands = [["ip", "netns", "add", name] for name in (node, client, dns)]
    commands += [["ip", "-n", node, "link", "add", "br0", "type", "bridge"],
                 ["ip", "-n", node, "addr", "add", f"{node_ip}/24", "dev", "br0"],
                 ["ip", "-n", node, "link", "set", "br0", "up"],
                 ["ip", "-n", node, "link", "set", "lo", "up"]]
    for pod, port, pod_ip in ((client, "vclient", "10.231.11.2"), (dns, "vdns", "10.231.11.3")):
        commands += [
            ["ip", "link", "add", port, "netns", node, "type", "veth", "peer", "name",
             "eth0", "netns", pod],
            ["ip", "-n", node, "link", "set", port, "master", "br0"],
            ["ip", "-n", node, "link", "set", port, "up"],
            ["ip", "-n", pod, "addr", "add", f"{pod_ip}/24", "dev", "eth0"],
            ["ip", "-n", pod, "link", "set", "eth0", "up"],
            ["ip", "-n", pod, "link", "set", "lo", "up"]]
    servers = []
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, text=True)
        servers = [serve_dns(node, node_ip), serve_dns(dns, "10.231.11.3")]
        yield node, client, node_ip, "10.231.11.3"
    finally:
        for server in servers:
            server.kill()
            server.wait()
        for name in (client, dns, node):    # a namespace takes its veth ends along
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.mark.bpf
def test_a_pods_queries_over_a_bridge_are_counted_once(node_with_a_bridge):
    """To the node's address on the bridge, the node's packet socket sees a
    query arrive twice (on the pod's bridge port, then on the bridge) and the
    answer leave twice (from the bridge, then through the port); to another
    pod, arrive on one port and leave through the other. Each counts once,
    under the client pod's process."""
    node, client, node_ip, dns_ip = node_with_a_bridge
    prefix = ("ip", "netns", "exec", client)
    to_node = asking("igm-dns-brn", node_ip, prefix=prefix)
    to_pod = asking("igm-dns-brp", dns_ip, [(KNOWN, AAAA, 4), (UNKNOWN, A, 3)], prefix=prefix)
    program = None
    try:
        with in_network_namespace(node):
            program, sampler = attach_dns()
        answered = [(answers_of(asker.run()), asker, server)
                    for asker, server in ((to_node, node_ip), (to_pod, dns_ip))]
        time.sleep(0.05)
        snapshot = sampler.tick()
    finally:
        if program is not None:
            program.close()
        to_node.kill()
        to_pod.kill()
    for answers, asker, server in answered:
        assert_counted_exactly(snapshot, server, answers, "ipv4",
                               process__command=asker.name, process__pid=asker.pid)


@pytest.mark.bpf
def test_a_pods_queries_to_a_service_are_counted_once_at_the_address_asked(
        node_with_a_dns_service):
    """The node's packet socket sees a query arrive from the client pod (to
    the Service address) and leave, after NAT, to the DNS pod; the answer
    arrive from the DNS pod's address and leave as the Service's. Each counts
    once, under the address the client asked and the client's process, with
    its latency; nothing under the DNS pod's own address."""
    node, client, dns_ip = node_with_a_dns_service
    asker = asking("igm-dns-svc", SERVICE_IP, prefix=("ip", "netns", "exec", client))
    program = None
    try:
        with in_network_namespace(node):
            program, sampler = attach_dns()
        answers = answers_of(asker.run())
        time.sleep(0.05)
        snapshot = sampler.tick()
    finally:
        if program is not None:
            program.close()
        asker.kill()
    assert sum(answers.values()) == 14
    assert_counted_exactly(snapshot, SERVICE_IP, answers, "ipv4",
                           process__command="igm-dns-svc", process__pid=asker.pid)
    for metric in ("dns.queries", "dns.responses", "dns.lookup.duration"):
        assert total(snapshot, metric, server__address=dns_ip) == 0, metric


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
        assert metric["attributes"] == ["process.pid", "process.command", "server.address",
                                        "network.type", "dns.question.type",
                                        "dns.response_code", *CONTAINER_ATTRIBUTES]
    every = ["dns.queries", "dns.responses", "dns.lookup.duration"]
    assert data["hooks"] == [
        {"program": "on_packet", "kind": "socket_filter", "target": "all", "metrics": every},
        {"program": "on_route_lookup", "kind": "tracepoint", "target": "fib:fib_table_lookup",
         "metrics": every},
        {"program": "on_route6_lookup", "kind": "tracepoint",
         "target": "fib6:fib6_table_lookup", "metrics": every}]
    description = " ".join(data["description"].split())
    assert "socket filter program on an AF_PACKET socket" in description
    assert "fib:fib_table_lookup" in description
