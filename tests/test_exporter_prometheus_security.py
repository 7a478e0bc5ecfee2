"""The Prometheus endpoint served over TLS (and mutual TLS) and behind basic auth
with bcrypt hashes, checked with real HTTPS clients and a real Prometheus server."""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request

import bcrypt
import pytest

from ig_metrics.exporters.base import ExporterStartError
from ig_metrics.exporters.prometheus.exporter import PrometheusSettings
from ig_metrics.exporters.prometheus.webserver import ServerTlsSettings
from ig_metrics.exporters.registry import create_exporter
from tests.receivers import (
    PROMETHEUS,
    PrometheusServer,
    exporter_config,
    make_tls_files,
    require_tool,
    tcp_like_snapshot,
)

PASSWORD = "s3cret-scrape-password"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("prom-tls"), "prom")


def serve(**settings):
    exporter = create_exporter(exporter_config(
        "secure-prom", "prometheus", PrometheusSettings(host="127.0.0.1", port=0, **settings)))
    exporter.start()
    exporter.export(tcp_like_snapshot(), 1.0)
    return exporter


def get(url: str, *, ca=None, user: str | None = None, password: str = "",
        client=None) -> tuple[int, str]:
    context = None
    if url.startswith("https"):
        context = ssl.create_default_context(cafile=str(ca))
        if client is not None:
            context.load_cert_chain(str(client[0]), str(client[1]))
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_basic_auth_lets_the_right_password_in_and_no_other():
    exporter = serve(basic_auth=(("prometheus", HASH),))
    url = f"http://127.0.0.1:{exporter.bound_port}/metrics"
    try:
        status, body = get(url, user="prometheus", password=PASSWORD)
        assert status == 200 and "tcp_sent_bytes_total" in body
        assert get(url)[0] == 401
        assert get(url, user="prometheus", password="wrong")[0] == 401
        assert get(url, user="someone-else", password=PASSWORD)[0] == 401
        # The cache of good passwords does not let a wrong one through afterwards.
        assert get(url, user="prometheus", password=PASSWORD + "x")[0] == 401
    finally:
        exporter.shutdown(1.0)


def test_tls_serves_https_that_a_client_verifies_with_the_ca(tls):
    exporter = serve(tls=ServerTlsSettings(tls.server_cert, tls.server_key))
    try:
        status, body = get(f"https://127.0.0.1:{exporter.bound_port}/metrics", ca=tls.ca)
        assert status == 200 and "tcp_sent_bytes_total" in body
        with pytest.raises((urllib.error.URLError, ConnectionError)):   # no plaintext answer
            urllib.request.urlopen(f"http://127.0.0.1:{exporter.bound_port}/metrics",
                                   timeout=5)
    finally:
        exporter.shutdown(1.0)


def test_mutual_tls_refuses_a_scraper_without_a_client_certificate(tls, tmp_path):
    exporter = serve(tls=ServerTlsSettings(tls.server_cert, tls.server_key, tls.ca))
    url = f"https://127.0.0.1:{exporter.bound_port}/metrics"
    other = make_tls_files(tmp_path, "other")
    try:
        assert get(url, ca=tls.ca, client=(tls.client_cert, tls.client_key))[0] == 200
        for client in (None, (other.client_cert, other.client_key)):   # none, wrong CA
            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
                get(url, ca=tls.ca, client=client)
    finally:
        exporter.shutdown(1.0)


def test_a_key_that_does_not_match_stops_start_with_the_settings_named(tls):
    config = exporter_config("bad-tls", "prometheus", PrometheusSettings(
        host="127.0.0.1", port=0, tls=ServerTlsSettings(tls.server_cert, tls.client_key)))
    with pytest.raises(ExporterStartError, match="tls.cert_file and tls.key_file.*"
                                                 "profiles/test.yaml:3"):
        create_exporter(config).start()


def test_a_real_prometheus_scrapes_over_tls_with_basic_auth(tls, tmp_path):
    require_tool(PROMETHEUS, "prometheus (Debian package `prometheus`)")
    exporter = serve(tls=ServerTlsSettings(tls.server_cert, tls.server_key),
                     basic_auth=(("prometheus", HASH),))
    try:
        target = f"localhost:{exporter.bound_port}"
        with PrometheusServer([target], tmp_path / "prom", scheme="https",
                              tls_config={"ca_file": str(tls.ca)},
                              basic_auth={"username": "prometheus", "password": PASSWORD}) \
                as prometheus:
            result = prometheus.wait_for('tcp_sent_bytes_total{process_pid="4242"}')
            assert float(result[0]["value"][1]) == 1_000_000
    finally:
        exporter.shutdown(1.0)
