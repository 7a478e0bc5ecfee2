"""Every mistake of the bad corpus (tests/config/bad) is reported through the CLI
with exit code 2, its file, its exact line and its exact message; the good and
warning corpora load with exit code 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.catalog.loading import load_catalog
from ig_metrics.cli import app

CORPUS = Path(__file__).parent / "config"
BAD = CORPUS / "bad"
GRPC_FORMS = "expected host:port, [ipv6]:port or http(s)://host:port, e.g. localhost:4317"
HTTP_FORMS = "expected a URL http(s)://host[:port][/path], e.g. http://localhost:4318"
LISTEN_FORMS = ("expected host:port, [ipv6]:port or :port (all interfaces), "
                "e.g. 127.0.0.1:9464")
OTLP_KEYS = ("type, interval, description, endpoint, insecure, tls, headers, timeout, "
             "compression, temporality, histograms, retry, queue, limits")
NAME_RULE = ("names use lowercase letters, digits, '.', '_' and '-', and start with a "
             "letter or a digit")
TYPES = "prometheus, otlp-grpc, otlp-http, prometheus-remote-write, console"

# file -> every error it must produce, as (line, message), in order.
EXPECTED_ERRORS: dict[str, list[tuple[int, str]]] = {
    "syntax-error.yaml": [
        (5, "YAML syntax error: expected ',' or ']', but got ':' "
            "(while parsing a flow sequence)"),
    ],
    "tab-indent.yaml": [
        (4, "TAB character in indentation; YAML indents with spaces only"),
    ],
    "duplicate-key.yaml": [
        (5, "duplicate key 'listen' (first at line 4); "
            "YAML would silently keep only the last one"),
        (6, "duplicate key 'prom' (first at line 2); "
            "YAML would silently keep only the last one"),
    ],
    "unknown-key.yaml": [
        (4, "exporters.central.endpiont: unknown key 'endpiont'; did you mean 'endpoint'? "
            f"Allowed keys for otlp-grpc exporters: {OTLP_KEYS}"),
        (7, "exporters.central.colour: unknown key 'colour'. "
            f"Allowed keys for otlp-grpc exporters: {OTLP_KEYS}"),
        (11, "profiles.prod.intervall: unknown key 'intervall'; did you mean 'interval'? "
             "Allowed keys for profiles: exporters, gadgets, interval, description, sampler, "
             "attributes"),
    ],
    "unknown-top-level-key.yaml": [
        (1, "unknown top-level key 'exporter'; did you mean 'exporters'? "
            "Allowed keys: exporters, profiles"),
        (6, "profiles.local.exporters: unknown exporter 'prom'. "
            "Known exporters: none are defined"),
    ],
    "wrong-type.yaml": [
        (5, "exporters.central.insecure: expected true or false, got 'yes please'"),
        (6, "exporters.central.headers: expected a mapping of names to text, got a list"),
        (7, "exporters.central.compression: expected one of gzip, none, got a number"),
        (8, "exporters.central.description: expected text, got a list"),
        (11, f"exporters.prom.listen: 9464 is a bare number; {LISTEN_FORMS}"),
        (14, "profiles.prod.exporters: expected a list of exporter names like "
             "[prom-local, central], got text"),
    ],
    "not-a-mapping.yaml": [
        (1, "top level: expected a mapping with exporters: and/or profiles: at the top, "
            "got a list"),
    ],
    "unknown-type.yaml": [
        (3, "exporters.central.type: unknown exporter type 'otlp-grcp'; did you mean "
            f"'otlp-grpc'? Choose one of: {TYPES}"),
        (6, f"exporters.weird.type: unknown exporter type 'statsd'. Choose one of: {TYPES}"),
    ],
    "missing-required.yaml": [
        (2, "exporters.central: missing required key 'endpoint' (the collector: host:port, "
            "[ipv6]:port or http(s)://host:port; "
            "e.g. endpoint: otel-collector.observability.svc:4317; or set "
            "$OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT)"),
        (5, f"exporters.untyped: missing required key 'type' (one of {TYPES})"),
        (8, "profiles.prod: missing required key 'exporters' (the exporter templates this "
            "profile runs, by name, from any file; e.g. exporters: [prom-local])"),
    ],
    "bad-duration.yaml": [
        (6, "exporters.central.interval: 10 has no unit; write 10s for seconds "
            "(durations look like 500ms, 10s, 1.5s, 1m or 1h)"),
        (7, "exporters.central.timeout: must be more than zero, got '0s'"),
        (10, "exporters.debug.interval: 'soon' is not a duration: write a number with a "
             "unit, e.g. 500ms, 10s, 1.5s, 1m or 1h"),
        (14, "profiles.prod.interval: must be more than zero, got '-5s'"),
    ],
    "bad-port.yaml": [
        (4, "exporters.prom.listen: '127.0.0.1:70000' is not a valid listen address: "
            f"port 70000 is out of range (1-65535); {LISTEN_FORMS}"),
        (7, "exporters.central.endpoint: 'localhost:0' is not a valid otlp-grpc endpoint: "
            f"port 0 is out of range (1-65535); {GRPC_FORMS}"),
    ],
    "bad-grpc-endpoint.yaml": [
        (4, "exporters.no-port.endpoint: 'collector.example' is not a valid otlp-grpc "
            f"endpoint: the port is missing; {GRPC_FORMS}"),
        (7, "exporters.bare-ipv6.endpoint: '::1:4317' is not a valid otlp-grpc endpoint: "
            f"write an IPv6 address in brackets, e.g. [::1]:4317; {GRPC_FORMS}"),
        (10, "exporters.with-path.endpoint: 'https://collector.example:4317/v1/metrics' is "
             "not a valid otlp-grpc endpoint: an OTLP/gRPC endpoint has no path; "
             f"{GRPC_FORMS}"),
    ],
    "bad-http-endpoint.yaml": [
        (4, "exporters.no-scheme.endpoint: 'localhost:4318' is not a valid otlp-http "
            "endpoint: the scheme is missing (host:port alone is the otlp-grpc form); "
            f"{HTTP_FORMS}"),
        (7, "exporters.wrong-scheme.endpoint: 'grpc://localhost:4318' is not a valid "
            "otlp-http endpoint: the scheme must be http:// or https://, not grpc://; "
            f"{HTTP_FORMS}"),
    ],
    "tls-missing-file.yaml": [
        (6, f"exporters.central.tls.ca_file: file not found: {BAD / 'no-such-ca.pem'} "
            "(a relative path is relative to the directory of the file that names it)"),
    ],
    "insecure-with-tls.yaml": [
        (5, "exporters.central: insecure: true turns TLS off, but tls: is set; "
            "remove one of them"),
    ],
    "remote-write.yaml": [
        (4, "exporters.no-path.url: 'http://mimir.example:9009' is not a valid remote write "
            "URL: the path is missing (Prometheus takes remote write at /api/v1/write); "
            "expected a URL http(s)://host[:port]/path, e.g. "
            "http://localhost:9090/api/v1/write"),
        (9, "exporters.two-credentials: basic_auth and bearer_token both set the "
            "Authorization header; keep one"),
        (13, "exporters.tls-over-http: tls: is set, but the url's http:// scheme sends in "
             "plaintext; use https://"),
        (17, "exporters.reserved-label.external_labels: __tenant__: names starting with __ "
             "are reserved for Prometheus' own use"),
        (18, "exporters.reserved-label.histograms: unknown value 'exponential'. Choose one "
             "of: classic, native"),
        (22, "exporters.no-password.basic_auth: missing required key 'password' (its "
             "password; write it as ${env:VAR} to keep it out of the file; e.g. password: "
             "${env:REMOTE_WRITE_PASSWORD})"),
    ],
    "cert-without-key.yaml": [
        (5, "exporters.central.tls: cert_file and key_file go together (a client "
            "certificate and its private key); key_file is missing"),
    ],
    "unset-env.yaml": [
        (4, "exporters.central.endpoint: environment variable IG_METRICS_TEST_UNSET_ENDPOINT "
            "is not set and has no default; set it or write "
            "${env:IG_METRICS_TEST_UNSET_ENDPOINT:-default}"),
        (7, "exporters.central.headers.authorization: environment variable "
            "IG_METRICS_TEST_UNSET_TOKEN is not set and has no default; set it or write "
            "${env:IG_METRICS_TEST_UNSET_TOKEN:-default}"),
    ],
    "malformed-env.yaml": [
        (4, "exporters.central.endpoint: malformed reference '${OTEL_ENDPOINT}'; "
            "write ${env:NAME} or ${env:NAME:-default}, or $${ for a literal ${"),
    ],
    "unknown-exporter-in-profile.yaml": [
        (7, "profiles.local.exporters: unknown exporter 'prom-locl'; did you mean "
            "'prom-local'? Known exporters: prom-local"),
    ],
    "profile-without-exporters.yaml": [
        (6, "profiles.empty-list.exporters: lists no exporters; name at least one, "
            "e.g. [prom-local, central]"),
        (8, "profiles.nothing.exporters: lists no exporters; name at least one, "
            "e.g. [prom-local, central]"),
        (10, "profiles.used.exporters: 'prom' is listed twice"),
    ],
    "same-listen-address.yaml": [
        (15, "profiles.clash.exporters: prometheus exporters 'prom-a' (127.0.0.1:9464) and "
             "'prom-b' (127.0.0.1:9464) cannot both listen: they need the same port; give "
             "each its own listen address"),
        (17, "profiles.wildcard.exporters: prometheus exporters 'prom-all' (0.0.0.0:9464) "
             "and 'prom-a' (127.0.0.1:9464) cannot both listen: they need the same port; "
             "give each its own listen address"),
    ],
    "reliability-settings.yaml": [
        (6, "exporters.central.retry: initial (60s) is longer than max (10s); waits grow "
            "from initial up to max"),
        (8, "exporters.central.queue.max_batches: must be at least 1, got '0'"),
        (9, "exporters.central.queue.max_bytes: 'lots' is not a size; write e.g. 65536, "
            "512KiB, 64MiB or 1GB"),
        (11, "exporters.central.limits.max_series: must be at least 2, got '1'"),
        (12, "exporters.central.limits.max_export_share: expected a share like 50% or 0.5, "
             "more than 0 and at most 100%, got '150%'"),
        (17, "exporters.scrape.tls: missing required key 'key_file' (private key (PEM) of "
             "cert_file; e.g. key_file: /etc/ig-metrics/server-key.pem)"),
        # The value may be a password written in clear: never quoted.
        (19, "exporters.scrape.basic_auth.prometheus: not a bcrypt hash (the value is not "
             "shown); write the bcrypt hash of the password, not the password: e.g. "
             "htpasswd -nbBC 10 '' PASSWORD | tr -d ':\\n', or python3 -c \"import bcrypt, "
             "getpass; print(bcrypt.hashpw(getpass.getpass().encode(), "
             "bcrypt.gensalt()).decode())\""),
        (22, "exporters.spaced.limits: min_interval (60s) is longer than max_interval (10s)"),
    ],
    "invalid-name.yaml": [
        (2, f"exporters.Prom_Local: invalid name 'Prom_Local'; {NAME_RULE}"),
        (5, f"profiles.-local: invalid name '-local'; {NAME_RULE}"),
    ],
}

EXPECTED_WARNINGS: dict[str, list[tuple[int, str]]] = {
    "reliability-settings.yaml": [
        (6, "exporters.cumulative-queue.queue: ignored: only temporality: delta queues "
            "intervals; a cumulative export carries the totals, so a failed one loses nothing"),
        (10, "exporters.open-scrape: basic_auth without tls: scrapers send their password "
             "in clear to a listen address that is not loopback; add tls:"),
    ],
    "unused-template.yaml": [(4, "exporters.spare: not used by any profile")],
    "insecure-remote.yaml": [
        (5, "exporters.remote-plaintext: metrics go unencrypted (insecure) to a host that "
            "is not loopback; use TLS unless the network is trusted"),
        (8, "exporters.remote-http-url: metrics go unencrypted (insecure) to a host that "
            "is not loopback; use TLS unless the network is trusted"),
    ],
    "remote-write-in-clear.yaml": [
        (5, "exporters.mimir-plain: bearer_token goes in clear over http:// to a host that "
            "is not loopback; use https://"),
    ],
    "scheme-decides-tls.yaml": [
        (5, "exporters.https-wins.insecure: ignored: the endpoint's https:// scheme means TLS"),
        (9, "exporters.http-wins.insecure: ignored: the endpoint's http:// scheme means "
            "plaintext"),
    ],
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IG_METRICS_TEST_UNSET_ENDPOINT", "IG_METRICS_TEST_UNSET_TOKEN",
                 "OTEL_EXPORTER_OTLP_ENDPOINT", "IG_METRICS_PROFILES_DIR"):
        monkeypatch.delenv(name, raising=False)


def validate_json(*paths: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["exporters", "validate", *map(str, paths), "-o", "json"])
    return result.exit_code, json.loads(result.stdout)


def test_every_bad_file_is_in_the_table() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED_ERRORS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_bad_file_reports_each_mistake_at_its_line(name: str) -> None:
    exit_code, report = validate_json(BAD / name)
    errors = [(p["file"], p["line"], p["message"])
              for p in report["problems"] if p["severity"] == "error"]
    assert exit_code == 2
    assert report["ok"] is False
    assert errors == [(str(BAD / name), line, message)
                      for line, message in EXPECTED_ERRORS[name]]


def test_bad_file_in_text_output_is_file_line_message() -> None:
    path = BAD / "unknown-type.yaml"
    result = CliRunner().invoke(app, ["exporters", "validate", str(path)])
    lines = result.stdout.splitlines()
    assert result.exit_code == 2
    assert lines[0] == (f"{path}:3: exporters.central.type: unknown exporter type "
                        f"'otlp-grcp'; did you mean 'otlp-grpc'? Choose one of: {TYPES}")
    assert lines[-1] == f"{path}: 1 file, 2 exporters, 1 profile, 2 errors, 0 warnings"


def test_names_duplicated_across_files_name_both_places() -> None:
    directory = BAD / "duplicate-across-files"
    exit_code, report = validate_json(directory)
    first, second = directory / "a.yaml", directory / "b.yaml"
    assert exit_code == 2
    assert [(p["file"], p["line"], p["message"]) for p in report["problems"]] == [
        (str(second), 3, f"exporter 'prom' is defined twice: here and at {first}:2; "
                         "names must be unique across all files"),
        (str(second), 7, f"profile 'local' is defined twice: here and at {first}:5; "
                         "names must be unique across all files"),
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED_WARNINGS))
def test_warnings_are_reported_and_exit_zero(name: str) -> None:
    path = CORPUS / "warn" / name
    exit_code, report = validate_json(path)
    assert exit_code == 0
    assert report["ok"] is True
    assert [(p["file"], p["line"], p["severity"], p["message"]) for p in report["problems"]] \
        == [(str(path), line, "warning", message) for line, message in EXPECTED_WARNINGS[name]]


@pytest.mark.parametrize("path", sorted(
    [*(CORPUS / "good").glob("*.yaml"), CORPUS / "good" / "split"]), ids=lambda p: p.name)
def test_good_files_have_no_problem(path: Path) -> None:
    exit_code, report = validate_json(path)
    assert (exit_code, report["problems"]) == (0, [])


def test_the_whole_good_corpus_loads_as_one_catalog() -> None:
    catalog = load_catalog([CORPUS / "good", CORPUS / "good" / "split"])
    assert catalog.problems == []
    assert sorted(catalog.profiles) == ["everything", "merged", "minimal", "reliable", "split"]
    assert len(catalog.exporters) == 15


def test_missing_path_is_an_error() -> None:
    missing = CORPUS / "no-such-dir"
    exit_code, report = validate_json(missing)
    assert exit_code == 2
    assert report["problems"] == [{"file": str(missing), "line": 0, "severity": "error",
                                   "message": "no such file or directory"}]
