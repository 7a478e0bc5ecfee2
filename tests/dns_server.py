"""A tiny DNS server and client for tests, with hand-built packets (RFC 1035):
the server answers NOERROR (with no records) for the names it knows and
NXDOMAIN for every other name; the client sends one query at a time and
waits for its answer. Run as a script, the server serves in the foreground
(for a network namespace): python -m tests.dns_server HOST NAME..."""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections import Counter

A, AAAA, TXT, MX = 1, 28, 16, 15
NOERROR, NXDOMAIN = 0, 3
DNS_PORT = 53
RECURSION_DESIRED = 0x0100
RESPONSE = 0x8000
RECURSION_AVAILABLE = 0x0080


def encode_name(name: str) -> bytes:
    labels = [label.encode() for label in name.rstrip(".").split(".")]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def build_query(query_id: int, name: str, qtype: int) -> bytes:
    header = struct.pack("!HHHHHH", query_id, RECURSION_DESIRED, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)   # class IN


def parse_question(packet: bytes) -> tuple[int, str, int, bytes]:
    """(id, name, qtype, the question's bytes) of a query."""
    query_id = struct.unpack_from("!H", packet)[0]
    offset, labels = 12, []
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + length].decode())
        offset += 1 + length
    qtype = struct.unpack_from("!H", packet, offset + 1)[0]
    return query_id, ".".join(labels), qtype, packet[12:offset + 5]


def build_response(query: bytes, known: set[str]) -> bytes:
    query_id, name, _, question = parse_question(query)
    rcode = NOERROR if name in known else NXDOMAIN
    flags = RESPONSE | RECURSION_DESIRED | RECURSION_AVAILABLE | rcode
    return struct.pack("!HHHHHH", query_id, flags, 1, 0, 0, 0) + question


class DnsServer:
    """Answers on UDP HOST:53 in a thread until closed."""

    def __init__(self, host: str, known: set[str]) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, DNS_PORT))
        self.host = host
        self.known = known
        self.sock.settimeout(0.1)
        self.answered = 0
        self.answers: Counter = Counter()        # (qtype, rcode) -> responses sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self.sock.recvfrom(512)
            except TimeoutError:
                continue          # look at _stop again
            response = build_response(query, self.known)
            self.sock.sendto(response, client)
            _, _, qtype, _ = parse_question(query)
            self.answers[(qtype, response[3] & 0x0f)] += 1
            self.answered += 1

    def wait(self) -> None:
        """Serves until closed (by another thread or a signal)."""
        self._thread.join()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def ask(server: str, name: str, qtype: int, query_id: int, timeout: float = 5.0) -> int:
    """Sends one query and returns the response code of its answer."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(build_query(query_id, name, qtype), (server, DNS_PORT))
        response = sock.recv(512)
    answered_id, flags = struct.unpack_from("!HH", response)
    assert answered_id == query_id and flags & RESPONSE
    return flags & 0x0f


if __name__ == "__main__":
    server = DnsServer(sys.argv[1], set(sys.argv[2:]))
    print("serving", flush=True)
    server.wait()
