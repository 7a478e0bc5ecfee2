"""Two network namespaces joined by a veth pair, with an nftables rule that
drops a share of the packets arriving at one end: real packet loss (this
kernel has no netem) for retransmission tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


@dataclass
class LossyLink:
    client_ns: str
    server_ns: str
    client_ip: str
    server_ip: str

    def exec_python(self, namespace: str, code: str, *args: str, **popen) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c", code,
                                 *args], **popen)

    def wait_until_closed(self, port: int, timeout: float = 30.0) -> None:
        """Until no socket on `port` can send again in either namespace (only
        TIME-WAIT, which never retransmits, may remain)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for namespace in (self.client_ns, self.server_ns):
                listing = subprocess.run(
                    ["ip", "netns", "exec", namespace, "ss", "-Htan",
                     f"( sport = :{port} or dport = :{port} )"],
                    check=True, capture_output=True, text=True).stdout
                states += [line.split()[0] for line in listing.splitlines() if line.strip()]
            if all(state == "TIME-WAIT" for state in states):
                return
            time.sleep(0.05)
        raise AssertionError(f"sockets on port {port} still open: {states}")

    def retransmitted_segments(self, namespace: str) -> int:
        """The namespace's own count (Tcp: RetransSegs in /proc/net/snmp)."""
        text = subprocess.run(["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp"],
                              check=True, capture_output=True, text=True).stdout
        header, values = [line.split() for line in text.splitlines() if line.startswith("Tcp:")]
        return int(dict(zip(header[1:], values[1:]))["RetransSegs"])


def create_lossy_link(drop_percent: int, port: int) -> LossyLink:
    """Namespaces igm-c-PID and igm-s-PID on 10.231.7.0/24; the server side drops
    `drop_percent`% of the TCP data packets arriving for `port` and the client
    side as much of those coming from it. A 5 ms minimum RTO keeps retransmissions quick.
    Tail loss probes are off (net.ipv4.tcp_early_retrans=0): this kernel counts
    some probe retransmissions in RetransSegs without tracing them, which would
    make the kernel's own count an unfit reference."""
    suffix = os.getpid() % 100000
    link = LossyLink(f"igm-c-{suffix}", f"igm-s-{suffix}", "10.231.7.1", "10.231.7.2")
    veth_c, veth_s = f"igmc{suffix}", f"igms{suffix}"
    try:
        _run("ip", "netns", "add", link.client_ns)
        _run("ip", "netns", "add", link.server_ns)
        _run("ip", "link", "add", veth_c, "type", "veth", "peer", "name", veth_s)
        for veth, namespace, address in ((veth_c, link.client_ns, link.client_ip),
                                         (veth_s, link.server_ns, link.server_ip)):
            _run("ip", "link", "set", veth, "netns", namespace)
            _run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", veth)
            _run("ip", "-n", namespace, "link", "set", veth, "up")
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
            _run("ip", "-n", namespace, "route", "replace", "10.231.7.0/24", "dev", veth,
                 "rto_min", "5ms")
            _run("ip", "netns", "exec", namespace, "sysctl", "-qw",
                 "net.ipv4.tcp_early_retrans=0")
            if os.path.exists("/proc/sys/net/ipv4/tcp_rto_max_ms"):
                # Loss on the data that carries ACKs inflates RTT samples, and with
                # them the RTO, up to minutes; cap it at 1 s (kernel 6.15 and later).
                _run("ip", "netns", "exec", namespace, "sysctl", "-qw",
                     "net.ipv4.tcp_rto_max_ms=1000")   # its minimum
        # Only packets carrying data are dropped: lost SYNs and FINs would add
        # seconds of backoff and make the run's length unpredictable.
        data = "tcp flags & (syn | fin | rst) == 0 ip length > 120"
        for namespace, match in ((link.server_ns, f"tcp dport {port} {data}"),
                                 (link.client_ns, f"tcp sport {port} {data}")):
            _run("ip", "netns", "exec", namespace, "nft", "add", "table", "inet", "igm")
            _run("ip", "netns", "exec", namespace, "nft", "add", "chain", "inet", "igm", "input",
                 "{ type filter hook input priority 0; }")
            _run("ip", "netns", "exec", namespace, "nft", "add", "rule", "inet", "igm", "input",
                 *match.split(), "numgen", "random", "mod", "100", "<", str(drop_percent), "drop")
    except subprocess.CalledProcessError as error:
        delete_lossy_link(link)
        raise RuntimeError(f"cannot build the test network: {' '.join(error.cmd)}: "
                           f"{error.stderr.strip()}") from error
    return link


def delete_lossy_link(link: LossyLink) -> None:
    for namespace in (link.client_ns, link.server_ns):
        # Deleting a namespace deletes its veth end and its nftables table.
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
