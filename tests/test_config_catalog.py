"""What the rest of ig-metrics is handed: settings objects built from the files,
profiles resolved with the right intervals, and where the profiles come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from ig_metrics.catalog.directories import BUILTIN_PROFILES_DIR, resolve_profiles_dir
from ig_metrics.catalog.loading import load_catalog
from ig_metrics.config import DEFAULT_INTERVAL, ConfigError
from ig_metrics.exporters.otlp.common import OtlpSettings, TlsSettings
from ig_metrics.exporters.prometheus.exporter import PrometheusSettings

CORPUS = Path(__file__).parent / "config"
GOOD = CORPUS / "good"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_otlp_grpc_settings_as_written() -> None:
    catalog = load_catalog([GOOD / "every-setting.yaml"], environ={})
    central = catalog.exporters["central"]
    assert central.type == "otlp-grpc"
    assert central.interval == 15.0
    assert central.description == "The central collector, over mutual TLS"
    assert central.settings == OtlpSettings(
        endpoint="otel-collector.observability.svc:4317",
        insecure=False,
        tls=TlsSettings(ca_file=GOOD / "tls" / "ca.pem", cert_file=GOOD / "tls" / "client.pem",
                        key_file=GOOD / "tls" / "client-key.pem"),
        headers=(("x-tenant", "team-a"), ("authorization", "Bearer not-from-env")),
        timeout=5.0,
        compression="gzip",
        temporality="delta",
    )
    assert (central.file, central.line) == (str(GOOD / "every-setting.yaml"), 11)


def test_tls_paths_are_relative_to_the_yaml_file_not_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "ca.pem").write_text("ca")
    (tmp_path / "only-in-cwd.pem").write_text("ca")
    write(tmp_path / "conf", "tls.yaml", (
        "exporters:\n"
        "  beside:\n"
        "    type: otlp-grpc\n"
        "    endpoint: collector.example:4317\n"
        "    tls: {ca_file: ca.pem}\n"
        "  cwd:\n"
        "    type: otlp-grpc\n"
        "    endpoint: collector.example:4317\n"
        "    tls: {ca_file: only-in-cwd.pem}\n"
        "profiles: {p: {exporters: [beside, cwd]}}\n"))
    monkeypatch.chdir(tmp_path)
    catalog = load_catalog([Path("conf")], environ={})
    assert catalog.exporters["beside"].settings.tls.ca_file == tmp_path / "conf" / "ca.pem"
    assert [(p.line, p.message) for p in catalog.errors] == [
        (9, f"exporters.cwd.tls.ca_file: file not found: {tmp_path / 'conf' / 'only-in-cwd.pem'}"
            " (a relative path is relative to the directory of the file that names it)")]


def test_defaults_of_each_type() -> None:
    catalog = load_catalog([GOOD / "minimal.yaml", GOOD / "anchors-and-merge.yaml"], environ={})
    assert catalog.exporters["scrape"].settings == PrometheusSettings("127.0.0.1", 9464)
    assert catalog.exporters["scrape"].interval is None
    grpc = catalog.exporters["gzip-grpc"].settings
    assert (grpc.timeout, grpc.temporality, grpc.headers, grpc.tls) == (
        10.0, "cumulative", (), TlsSettings())


def test_merge_key_explicit_values_win() -> None:
    catalog = load_catalog([GOOD / "anchors-and-merge.yaml"], environ={})
    merged = catalog.exporters["gzip-grpc-delta"].settings
    assert (merged.endpoint, merged.insecure, merged.compression, merged.temporality) == (
        "127.0.0.1:4317", True, "gzip", "delta")
    assert catalog.profiles["merged"].description == \
        "A literal ${env:NOT_EXPANDED} in a description"


def test_listen_forms() -> None:
    catalog = load_catalog([GOOD / "every-setting.yaml"], environ={})
    assert catalog.exporters["prom-all-interfaces"].settings == PrometheusSettings("0.0.0.0", 9464)
    assert catalog.exporters["prom-v6"].settings == PrometheusSettings("::1", 9465)
    assert catalog.exporters["prom-v6"].settings.listen == "[::1]:9465"


def test_otlp_http_without_path_gets_v1_metrics() -> None:
    catalog = load_catalog([GOOD / "every-setting.yaml"], environ={})
    assert catalog.exporters["http-default-path"].settings.endpoint == \
        "http://localhost:4318/v1/metrics"
    assert catalog.exporters["http-own-path"].settings.endpoint == \
        "https://collector.example/otlp/v1/metrics"


def test_scheme_decides_insecure() -> None:
    catalog = load_catalog([CORPUS / "warn" / "scheme-decides-tls.yaml"], environ={})
    assert catalog.exporters["https-wins"].settings.insecure is False
    assert catalog.exporters["http-wins"].settings.insecure is True
    http = load_catalog([GOOD / "every-setting.yaml"], environ={}).exporters
    assert http["http-default-path"].settings.insecure is True     # http:// URL
    assert http["http-own-path"].settings.insecure is False        # https:// URL
    assert http["central"].settings.insecure is False               # host:port: TLS


def test_env_values_reach_the_settings() -> None:
    environ = {"IG_METRICS_TEST_TENANT": "tenant-from-env"}
    central = load_catalog([GOOD / "every-setting.yaml"], environ=environ).exporters["central"]
    assert dict(central.settings.headers)["x-tenant"] == "tenant-from-env"


def test_interval_precedence() -> None:
    # every-setting.yaml: profile interval 1m; prom-all-interfaces has 30s,
    # print-json 500ms, central 15s, the others none.
    catalog = load_catalog([GOOD / "every-setting.yaml"], environ={})
    intervals = {e.name: e.interval for e in catalog.profile("everything").exporters}
    assert intervals["prom-all-interfaces"] == 30.0     # exporter's own
    assert intervals["print-json"] == 0.5
    assert intervals["prom-v6"] == 60.0                 # the profile's
    overridden = catalog.profile("everything", interval_override=2.0).exporters
    assert {e.interval for e in overridden} == {2.0}    # --interval wins over all


def test_default_interval_when_nobody_sets_one() -> None:
    catalog = load_catalog([GOOD / "minimal.yaml"], environ={})
    profile = catalog.profile("minimal")
    assert [(e.name, e.interval) for e in profile.exporters] == [("scrape", DEFAULT_INTERVAL)]
    assert profile.file == str(GOOD / "minimal.yaml")


def test_profile_keeps_exporter_order_and_lines() -> None:
    catalog = load_catalog([GOOD / "split"], environ={})
    assert [e.name for e in catalog.profile("split").exporters] == ["split-prom", "split-console"]
    assert catalog.profiles["split"].exporter_lines == (3, 3)


def test_unknown_profile_suggests_the_closest() -> None:
    catalog = load_catalog([BUILTIN_PROFILES_DIR], environ={})
    with pytest.raises(ConfigError) as error:
        catalog.profile("otlp-prd")
    assert error.value.exit_code == 2
    assert str(error.value) == (
        "unknown profile 'otlp-prd'; did you mean 'otlp-prod'? Known profiles: debug, "
        f"hybrid, local, node, otlp-prod, per-process, remote-write "
        f"(from {BUILTIN_PROFILES_DIR})")


def test_a_catalog_with_errors_resolves_no_profile() -> None:
    path = CORPUS / "bad" / "bad-port.yaml"
    catalog = load_catalog([path], environ={})
    with pytest.raises(ConfigError) as error:
        catalog.profile("local")
    assert error.value.problems == catalog.errors
    assert str(error.value).splitlines() == [
        *(str(problem) for problem in catalog.errors),
        f"2 errors in the profiles in {path}",
    ]


def test_non_positive_interval_override_is_refused() -> None:
    catalog = load_catalog([GOOD / "minimal.yaml"], environ={})
    with pytest.raises(ConfigError, match="the interval must be more than zero, got 0s"):
        catalog.profile("minimal", interval_override=0.0)


def test_directory_is_read_sorted_with_yaml_and_yml_and_no_hidden_files(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", "profiles: {p: {exporters: [e]}}\n")
    write(tmp_path, "a.yaml", "exporters: {e: {type: console}}\n")
    write(tmp_path, ".#a.yaml", "not: [valid\n")       # an editor's lock file
    write(tmp_path, "notes.txt", "not: [valid\n")
    catalog = load_catalog([tmp_path], environ={})
    assert catalog.files == [tmp_path / "a.yaml", tmp_path / "b.yml"]
    assert catalog.problems == []


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml",
                 "exporters: {e: {type: console}}\nprofiles: {p: {exporters: [e]}}\n")
    catalog = load_catalog([tmp_path, path], environ={})
    assert (catalog.files, catalog.problems) == ([path], [])


def test_directory_without_yaml_is_a_warning(tmp_path: Path) -> None:
    catalog = load_catalog([tmp_path], environ={})
    assert [str(p) for p in catalog.problems] == [
        f"{tmp_path}: warning: no *.yaml files in this directory"]


def test_all_problems_of_a_file_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "many.yaml", (
        "exporters:\n"
        "  a:\n"
        "    type: prometheus\n"
        "    listen: nowhere\n"
        "  b:\n"
        "    type: otlp-http\n"
        "    endpoint: http://localhost:4318\n"
        "    timeout: forever\n"
        "    compression: zip\n"
        "profiles:\n"
        "  p:\n"
        "    exporters: [a, b, c]\n"))
    lines = [p.line for p in load_catalog([path], environ={}).errors]
    assert lines == [4, 8, 9, 12]


class TestProfilesDirectoryResolution:
    @pytest.fixture(autouse=True)
    def isolated(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("IG_METRICS_PROFILES_DIR", raising=False)

    def test_flag_wins_over_everything(self, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "profiles").mkdir()
        monkeypatch.setenv("IG_METRICS_PROFILES_DIR", "/from/env")
        assert resolve_profiles_dir(Path("/from/flag")) == (Path("/from/flag"), "--profiles-dir")

    def test_environment_wins_over_cwd(self, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "profiles").mkdir()
        monkeypatch.setenv("IG_METRICS_PROFILES_DIR", "/from/env")
        assert resolve_profiles_dir(None) == (Path("/from/env"), "$IG_METRICS_PROFILES_DIR")

    def test_empty_environment_variable_is_ignored(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("IG_METRICS_PROFILES_DIR", "")
        assert resolve_profiles_dir(None) == (BUILTIN_PROFILES_DIR, "built-in")

    def test_cwd_profiles_directory(self, tmp_path: Path) -> None:
        (tmp_path / "profiles").mkdir()
        assert resolve_profiles_dir(None) == (Path("profiles"), "./profiles")

    def test_cwd_profiles_file_is_not_a_directory(self, tmp_path: Path) -> None:
        (tmp_path / "profiles").write_text("")
        assert resolve_profiles_dir(None) == (BUILTIN_PROFILES_DIR, "built-in")

    def test_built_in_last(self) -> None:
        directory, rule = resolve_profiles_dir(None)
        assert (directory, rule) == (BUILTIN_PROFILES_DIR, "built-in")
        assert (directory / "profiles.yaml").is_file()


def test_the_budget_is_a_profile_setting(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "exporters: {p: {type: prometheus}}\n"
        "profiles:\n  big: {exporters: [p], sampler: {max_series: 5000}}\n  plain: {exporters: [p]}\n")
    catalog = load_catalog([tmp_path], environ={})
    assert catalog.profile("big").sampler_max_series == 5000
    assert catalog.profile("plain").sampler_max_series == 250_000
