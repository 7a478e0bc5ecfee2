"""The objects one `run --cluster` creates: deploy's service account, ConfigMap
and DaemonSet, named and labelled with the run's id so that two runs (and a
standing deployment) never share one. When the profile has no Prometheus
endpoint the CLI can read through the pod proxy, the ConfigMap gets one more
file: an exporter `ig-metrics-cli` (plain HTTP, every interface) and a
profile that is the chosen one plus that exporter."""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ig_metrics.k8s.manifests import (
    RUN_LABEL, DeployOptions, config_map, daemon_set, pod_environment, service_account,
)
from ig_metrics.k8s.podprofiles import PodProfiles, ScrapeEndpoint, pod_profiles

CLI_EXPORTER = "ig-metrics-cli"
CLI_FILE = "ig-metrics-cli.yaml"
CLI_PORT = 9479                  # the first free one from here on
RUN_ID_BYTES = 3                 # 6 hex digits: names stay short, collisions unlikely


def new_run_id() -> str:
    return secrets.token_hex(RUN_ID_BYTES)


def run_selector(run_id: str) -> str:
    return f"{RUN_LABEL}={run_id}"


@dataclass
class RunPlan:
    """What a run creates, in creation order, and the endpoint the CLI reads."""

    options: DeployOptions
    profiles: PodProfiles
    manifests: list[dict[str, Any]]
    endpoint: ScrapeEndpoint
    added_exporter: bool         # whether ig-metrics-cli was added for the CLI

    @property
    def selector(self) -> str:
        return run_selector(self.options.run_id)


def readable_endpoint(scrape: list[ScrapeEndpoint]) -> ScrapeEndpoint | None:
    """The first Prometheus endpoint the pod proxy can read: one that asks no
    credentials (the API server's proxy has none to give)."""
    return next((endpoint for endpoint in scrape if not endpoint.credentials), None)


def plan_run(options: DeployOptions, directory: Path) -> RunPlan:
    """DeployInputError for profiles a pod could not run with (FILE:LINE)."""
    options = replace(options, run_id=options.run_id or new_run_id())
    profiles = pod_profiles(directory, options.profile, pod_environment(options))
    endpoint = readable_endpoint(profiles.scrape)
    added = endpoint is None
    if added:
        files, profile_name = with_cli_exporter(profiles)
        notes = profiles.notes
        with tempfile.TemporaryDirectory(prefix="ig-metrics-run-") as scratch:
            for name, text in files.items():
                (Path(scratch) / name).write_text(text)
            profiles = pod_profiles(Path(scratch), profile_name, pod_environment(options))
        profiles.notes = [*notes, *(note for note in profiles.notes if scratch not in note)]
        options = replace(options, profile=profile_name)
        endpoint = next(entry for entry in profiles.scrape if entry.exporter == CLI_EXPORTER)
    manifests = [service_account(options), config_map(options, profiles),
                 daemon_set(options, profiles)]
    return RunPlan(options, profiles, manifests, endpoint, added)


def with_cli_exporter(profiles: PodProfiles) -> tuple[dict[str, str], str]:
    """The ConfigMap's files plus CLI_FILE, and the name of its profile: the
    chosen profile as written, with the `ig-metrics-cli` exporter added."""
    profile = profiles.profile
    written = yaml.safe_load(profiles.files[Path(profile.file).name])["profiles"][profile.name]
    taken = {exporter.settings.port for exporter in profile.exporters
             if hasattr(exporter.settings, "port")}
    port = next(port for port in range(CLI_PORT, CLI_PORT + 100) if port not in taken)
    name = f"{profile.name}-cli"
    derived = {**written, "exporters": [*written["exporters"], CLI_EXPORTER],
               "description": f"{profile.name}, and {CLI_EXPORTER} for ig-metrics run --cluster"}
    text = ("# Added by ig-metrics run --cluster: the CLI reads each node's metrics from\n"
            "# this endpoint through the API server's pod proxy.\n" + yaml.safe_dump({
                "exporters": {CLI_EXPORTER: {
                    "type": "prometheus", "listen": f"0.0.0.0:{port}",
                    "description": "read by ig-metrics run --cluster through the pod proxy"}},
                "profiles": {name: derived}}, sort_keys=False))
    return {**profiles.files, CLI_FILE: text}, name
