"""The objects one `run --cluster` creates: deploy's service account, ConfigMap
and DaemonSet, named and labelled with the run's id so that two runs (and a
standing deployment) never share one; written for the API server's version."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ig_metrics.deploy.manifests import (
    RUN_LABEL,
    DeployOptions,
    config_map,
    daemon_set,
    pod_environment,
    service_account,
)
from ig_metrics.deploy.podprofiles import PodProfiles, pod_profiles

RUN_ID_BYTES = 3                 # 6 hex digits: names stay short, collisions unlikely


def new_run_id() -> str:
    return secrets.token_hex(RUN_ID_BYTES)


def run_selector(run_id: str) -> str:
    return f"{RUN_LABEL}={run_id}"


@dataclass
class RunPlan:
    """What a run creates, in creation order."""

    options: DeployOptions
    profiles: PodProfiles
    manifests: list[dict[str, Any]]

    @property
    def selector(self) -> str:
        return run_selector(self.options.run_id)


def plan_run(options: DeployOptions, directory: Path) -> RunPlan:
    """DeployInputError for profiles a pod could not run with (FILE:LINE)."""
    options = replace(options, run_id=options.run_id or new_run_id())
    profiles = pod_profiles(directory, options.profile, pod_environment(options))
    manifests = [service_account(options), config_map(options, profiles),
                 daemon_set(options, profiles)]
    return RunPlan(options, profiles, manifests)
