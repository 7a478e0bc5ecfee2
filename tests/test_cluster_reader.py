"""The cluster view's reads through the API server (cluster/apireader.py), over
real sockets: TLS with the kubeconfig's CA and token, keep-alive connections,
the answers an API server may pass on from a pod (chunked, until close,
after an interim 100), an HTTP proxy from the kubeconfig, and refusals."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ig_metrics.cluster.api import Cluster, ClusterError, connect, pod_proxy_path
from ig_metrics.cluster.apireader import ApiReader, ReadError
from ig_metrics.cluster.watch import ClusterWatch
from ig_metrics.summary.node import SUMMARY_PATH
from tests.cluster_farm import SummaryFarm
from tests.forward_proxy import ForwardProxy
from tests.k8s_apiserver import FakeApiServer, write_kubeconfig
from tests.receivers import make_tls_files

NAMESPACE = "ig-metrics"
LABELS = {"app.kubernetes.io/name": "ig-metrics", "app.kubernetes.io/component": "tcp"}
SELECTOR = ",".join(f"{key}={value}" for key, value in LABELS.items())
SENT_TOTAL = "tcp.sent"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"), "apiserver")


def proxied_connections(api: FakeApiServer) -> list[tuple[str, int]]:
    """Record the client address (one per TCP connection) of every pods/proxy
    request the stand-in API server takes."""
    seen: list[tuple[str, int]] = []
    handler = api.http.RequestHandlerClass

    class Recording(handler):             # type: ignore[misc, valid-type]
        def do_GET(self) -> None:
            if "/proxy/" in self.path:
                seen.append(self.client_address)
            super().do_GET()

    api.http.RequestHandlerClass = Recording
    return seen


def totals(reading) -> dict[str, float]:
    return {node.node: node.summary.gadget("tcp").totals[SENT_TOTAL]
            for node in reading.ready()}


def test_nodes_are_read_over_tls_on_kept_connections(tmp_path, tls):
    with FakeApiServer(tls=(tls.server_cert, tls.server_key)) as api:
        api.existing_namespaces.add(NAMESPACE)
        farm = SummaryFarm(api, 4, namespace=NAMESPACE, labels=LABELS, series=50)
        connections = proxied_connections(api)
        cluster = connect(write_kubeconfig(tmp_path / "kubeconfig", api, ca_file=tls.ca))
        try:
            with ClusterWatch(cluster, NAMESPACE, SELECTOR, 9465, sort=SENT_TOTAL, top=5,
                              concurrency=2) as watch:
                readings = [watch.read(5.0) for _ in range(5)]
        finally:
            cluster.close()
    assert [len(reading.ready()) for reading in readings] == [4] * 5
    # Every node's summary whole: its series count, its busiest row, totals
    # that grow from one reading to the next.
    for node in readings[-1].ready():
        tcp = node.summary.gadget("tcp")
        assert tcp.series == 50
        assert tcp.rows[0].cells[SENT_TOTAL] == farm.rate(node.node, 0)
    assert set(totals(readings[-1])) == set(farm.names)
    assert all(totals(readings[0])[name] < totals(readings[-1])[name] for name in farm.names)
    # 20 reads on at most 2 connections (the bound), kept from one refresh to the next.
    assert len(connections) == 20
    assert len(set(connections)) <= 2
    assert not [thread for thread in threading.enumerate() if thread.name == "api-reader"]


def test_a_server_certificate_the_kubeconfig_does_not_trust_is_refused(tmp_path, tls):
    other = make_tls_files(tmp_path / "other", "other")
    with FakeApiServer(tls=(tls.server_cert, tls.server_key)) as api:
        api.existing_namespaces.add(NAMESPACE)
        SummaryFarm(api, 1, namespace=NAMESPACE, labels=LABELS, series=10)
        cluster = connect(write_kubeconfig(tmp_path / "kubeconfig", api, ca_file=tls.ca))
        cluster.client.configuration.ssl_ca_cert = str(other.ca)
        try:
            with ApiReader(cluster, 1) as reader, pytest.raises(ReadError) as refused:
                reader.run(reader.get(pod_proxy_path(NAMESPACE, "ig-metrics-node-0000", 9465,
                                                     SUMMARY_PATH),
                                      what="get pods/proxy", timeout=5))
        finally:
            cluster.close()
    assert "cannot reach the API server (context test" in str(refused.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


def test_insecure_skip_tls_verify_reads_a_server_no_ca_names(tmp_path, tls):
    with FakeApiServer(tls=(tls.server_cert, tls.server_key)) as api:
        api.existing_namespaces.add(NAMESPACE)
        farm = SummaryFarm(api, 2, namespace=NAMESPACE, labels=LABELS, series=10)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api)
        config = yaml.safe_load(kubeconfig.read_text())
        config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
        kubeconfig.write_text(yaml.safe_dump(config))
        cluster = connect(kubeconfig)
        try:
            with ClusterWatch(cluster, NAMESPACE, SELECTOR, 9465, sort=None, top=5) as watch:
                reading = watch.read(5.0)
        finally:
            cluster.close()
    assert set(totals(reading)) == set(farm.names)


@pytest.mark.parametrize("secure", [True, False], ids=["https-connect", "http-absolute"])
def test_reads_go_through_the_kubeconfigs_proxy_with_its_credentials(tmp_path, tls, secure):
    server_tls = (tls.server_cert, tls.server_key) if secure else None
    with FakeApiServer(tls=server_tls) as api, ForwardProxy(("squid", "s3cret")) as proxy:
        api.existing_namespaces.add(NAMESPACE)
        farm = SummaryFarm(api, 3, namespace=NAMESPACE, labels=LABELS, series=20)
        connections = proxied_connections(api)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api,
                                      ca_file=tls.ca if secure else None)
        config = yaml.safe_load(kubeconfig.read_text())
        config["clusters"][0]["cluster"]["proxy-url"] = proxy.url
        kubeconfig.write_text(yaml.safe_dump(config))
        cluster = connect(kubeconfig)
        try:
            with ClusterWatch(cluster, NAMESPACE, SELECTOR, 9465, sort=None, top=5,
                              concurrency=2) as watch:
                reading = watch.read(5.0)
                while len(reading.ready()) < 3:
                    reading = watch.read(5.0)
        finally:
            cluster.close()
    assert set(totals(reading)) == set(farm.names)
    assert proxy.refused == 0
    # Every node read came to the API server from the proxy.
    assert connections and set(connections) <= proxy.upstreams, (connections, proxy.upstreams)
    if secure:
        assert ("CONNECT", f"127.0.0.1:{api.port}") in proxy.taken
    else:
        assert any(method == "GET" and target.startswith(f"http://127.0.0.1:{api.port}/api/v1/"
                                                          "namespaces/ig-metrics/pods/")
                   for method, target in proxy.taken), proxy.taken


def test_a_socks_proxy_is_refused_by_name(tmp_path):
    with FakeApiServer() as api:
        cluster = connect(write_kubeconfig(tmp_path / "kubeconfig", api))
        cluster.client.configuration.proxy = "socks5://me:s3cret@127.0.0.1:1080"
        try:
            with pytest.raises(ClusterError, match="proxy-url socks5://127.0.0.1:1080: the "
                                                   "cluster view reads through an http:// "
                                                   "proxy only") as refused:
                ApiReader(cluster, 1)
            assert "s3cret" not in str(refused.value)
        finally:
            cluster.close()


# --- answers as an API server may pass them on from a pod --------------------------------
# What each path answers, as bytes on the wire; each splits its answer in
# pieces sent apart, as a slow pod's arrive.
BODY = json.dumps({"format": 1, "answer": "x" * 3000}).encode()
ANSWERS: dict[str, list[bytes]] = {
    "/length": [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Len",
                b"gth: %d\r\n\r\n" % len(BODY) + BODY[:100], BODY[100:]],
    "/chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                 b"%x;ext=1\r\n" % 1000 + BODY[:1000] + b"\r\n%x\r\n" % (len(BODY) - 1000),
                 BODY[1000:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"],
    "/continue": [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
                  b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY],
    "/until-close": [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY[:10], BODY[10:]],
    "/http10": [b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY],
    "/forbidden": [b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 52\r\n\r\n",
                   b'{"kind":"Status","message":"pods/proxy is refused"}\n'],
    "/garbage": [b"SSH-2.0-OpenSSH_9.2\r\n\r\n"],
    "/huge": [b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n" + BODY],
    # Kept alive, but the next request on its connection finds it closed, as
    # when a server or a load balancer closes an idle connection.
    "/then-idle-close": [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY],
}
CLOSES = {"/until-close", "/http10", "/garbage"}


class RawServer:
    """THIS STANDS IN FOR AN API SERVER passing a pod's answer on: it answers
    each request with ANSWERS' bytes (HTTP/1.1 keep-alive unless the answer
    ends its connection), and counts the connections it accepted."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server.connections += 1
                closing = False
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    path = line.split()[1].decode()
                    server.requests.append(path)
                    if closing:
                        return
                    closing = path == "/then-idle-close"
                    for piece in ANSWERS[path]:
                        self.wfile.write(piece)
                        self.wfile.flush()
                        time.sleep(0.01)
                    if path in CLOSES:
                        self.connection.shutdown(socket.SHUT_WR)
                        return

        self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.tcp.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.tcp.server_address[1]}"

    def __enter__(self) -> RawServer:
        threading.Thread(target=self.tcp.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.tcp.shutdown()
        self.tcp.server_close()


@pytest.fixture
def raw_reader() -> Iterator[tuple[RawServer, ApiReader]]:
    from kubernetes import client

    with RawServer() as raw:
        configuration = client.Configuration(host=raw.url)
        configuration.api_key = {"BearerToken": "Bearer t0ken"}
        cluster = Cluster(client.ApiClient(configuration), "raw", raw.url, Path("kubeconfig"))
        with ApiReader(cluster, 1) as reader:
            yield raw, reader


def test_each_way_an_answer_may_end_is_read_whole(raw_reader):
    raw, reader = raw_reader

    async def read(path: str) -> bytes:
        return await reader.get(path, what="get it", timeout=5)

    for path in ("/length", "/chunked", "/continue", "/length", "/until-close", "/length",
                 "/http10", "/chunked"):
        assert reader.run(read(path)) == BODY, path
    # Kept-alive answers share a connection; one that ends its connection
    # makes the next read open another: 3 connections for the 8 reads.
    assert raw.connections == 3


def test_a_kept_connection_closed_while_idle_is_replaced_and_the_read_sent_again(raw_reader):
    raw, reader = raw_reader

    async def read(path: str) -> bytes:
        return await reader.get(path, what="get it", timeout=5)

    assert reader.run(read("/then-idle-close")) == BODY
    assert reader.run(read("/length")) == BODY
    assert raw.requests == ["/then-idle-close", "/length", "/length"]
    assert raw.connections == 2


def test_a_refusal_and_an_answer_that_is_not_http_are_named(raw_reader):
    raw, reader = raw_reader

    async def read(path: str) -> bytes:
        return await reader.get(path, what="get pods/proxy in namespace x", timeout=5)

    with pytest.raises(ReadError) as refused:
        reader.run(read("/forbidden"))
    assert refused.value.status == 403
    assert str(refused.value).startswith("forbidden: you may not get pods/proxy in namespace x"
                                         f" (context raw, server {raw.url})")
    assert str(refused.value).endswith("The API server said: pods/proxy is refused")
    with pytest.raises(ReadError, match="cannot get pods/proxy in namespace x .*: the API "
                                        "server's answer is not HTTP/1.1: status line "
                                        "'SSH-2.0-OpenSSH_9.2'"):
        reader.run(read("/garbage"))
    with pytest.raises(ReadError, match="not HTTP/1.1: Content-Length 999999999999, more than"):
        reader.run(read("/huge"))
    # The reader goes on after each, on a connection of its own.
    assert reader.run(read("/length")) == BODY
