"""The monitoring objects `ig-metrics deploy` adds on request, beside the
manifests of deploy/manifests.py: the mixin's dashboards and rules as a ConfigMap
(Grafana's dashboard sidecar picks it up by its label), and the Prometheus
Operator's PodMonitor and PrometheusRule.
The shared objects hold the mixin of every built-in gadget, so that deploying
several gadgets applies the same objects again rather than competing ones."""

from __future__ import annotations

from typing import Any

from ig_metrics import __version__
from ig_metrics.app import mixin
from ig_metrics.deploy.manifests import NAME, DeployOptions
from ig_metrics.deploy.podprofiles import PodProfiles
from ig_metrics.gadgets.spec import GadgetSpec

MONITORING_API = "monitoring.coreos.com/v1"
# The label the Grafana Helm chart's dashboard sidecar looks for, by default.
GRAFANA_DASHBOARD_LABEL = {"grafana_dashboard": "1"}


class MonitoringError(Exception):
    """Monitoring objects that cannot be made for this deploy (exit code 2)."""


def _metadata(name: str, options: DeployOptions, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace,
            "labels": {"app.kubernetes.io/name": NAME, "app.kubernetes.io/version": __version__,
                       "app.kubernetes.io/component": "monitoring", **labels}}


def monitoring_config_map(options: DeployOptions, specs: list[GadgetSpec],
                          runbook_base: str) -> dict[str, Any]:
    """Every mixin file, keyed by its file name (a ConfigMap key has no '/')."""
    files = mixin.build(specs, runbook_base)
    data = {path.rsplit("/", 1)[-1]: text for path, text in sorted(files.items())}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(f"{NAME}-monitoring", options, **GRAFANA_DASHBOARD_LABEL),
            "data": data}


def pod_monitor(options: DeployOptions, profiles: PodProfiles) -> dict[str, Any]:
    """Scrapes every Prometheus endpoint of the pods; `instance` becomes the
    node's name, which the dashboards' node variable shows."""
    if not profiles.scrape:
        raise MonitoringError(
            f"--prometheus-operator: profile '{options.profile}' has no prometheus "
            "exporter, so there is nothing for a PodMonitor to scrape; add one to the "
            "profile or leave out --prometheus-operator")
    endpoints = []
    for index, endpoint in enumerate(profiles.scrape):
        endpoints.append({
            "port": "metrics" if index == 0 else f"metrics-{index + 1}",
            "path": "/metrics", "scheme": endpoint.scheme,
            "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"],
                             "targetLabel": "instance", "action": "replace"}]})
    return {"apiVersion": MONITORING_API, "kind": "PodMonitor",
            "metadata": _metadata(options.workload, options),
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": NAME,
                                                  "app.kubernetes.io/instance":
                                                      options.workload}},
                     "podMetricsEndpoints": endpoints}}


def pod_monitor_notes(profiles: PodProfiles) -> list[str]:
    return [f"the PodMonitor scrapes exporter {endpoint.exporter} over {endpoint.scheme}"
            + (" but it asks scrapers for credentials: add basicAuth or tlsConfig to the "
               "PodMonitor's endpoint" if endpoint.credentials else "")
            + (" without a CA: add tlsConfig.ca to the PodMonitor's endpoint"
               if endpoint.scheme == "https" and not endpoint.credentials else "")
            for endpoint in profiles.scrape
            if endpoint.credentials or endpoint.scheme == "https"]


def prometheus_rule(options: DeployOptions, specs: list[GadgetSpec],
                    runbook_base: str) -> dict[str, Any]:
    return {"apiVersion": MONITORING_API, "kind": "PrometheusRule",
            "metadata": _metadata(NAME, options),
            "spec": {"groups": mixin.rule_groups(specs, runbook_base)}}
