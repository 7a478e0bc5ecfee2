"""The monitoring mixin of ig-metrics: Grafana dashboards, Prometheus alerting
and recording rules, generated from the gadget specs and the self-metrics
(`ig-metrics mixin`; committed under monitoring/; docs/monitoring.md)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ig_metrics.app.mixin.dashboards import gadget_dashboard, health_dashboard, overview_dashboard
from ig_metrics.app.mixin.rules import DEFAULT_RUNBOOK_BASE, alert_groups, recording_groups
from ig_metrics.gadgets.spec import GadgetSpec

DASHBOARDS_DIR = "dashboards"
ALERTS_FILE = "prometheus/alerts.yaml"
RECORDING_FILE = "prometheus/recording.yaml"


class _Dumper(yaml.SafeDumper):
    """Multi-line PromQL as literal blocks, as a person would write it."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def rules_yaml(groups: list[dict]) -> str:
    return yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=100)


def dashboards(specs: list[GadgetSpec]) -> dict[str, dict]:
    """Every dashboard's JSON by its uid."""
    boards = [gadget_dashboard(spec) for spec in specs]
    boards += [overview_dashboard(specs), health_dashboard()]
    return {board.uid: board.json() for board in boards}


def rule_groups(specs: list[GadgetSpec], runbook_base: str = DEFAULT_RUNBOOK_BASE
                ) -> list[dict]:
    """Alerting and recording groups together (a PrometheusRule's spec.groups)."""
    return alert_groups(runbook_base) + recording_groups(specs)


def build(specs: list[GadgetSpec], runbook_base: str = DEFAULT_RUNBOOK_BASE) -> dict[str, str]:
    """Every file of the mixin: relative path -> text."""
    files = {f"{DASHBOARDS_DIR}/{uid}.json": json.dumps(board, indent=2) + "\n"
             for uid, board in dashboards(specs).items()}
    files[ALERTS_FILE] = rules_yaml(alert_groups(runbook_base))
    files[RECORDING_FILE] = rules_yaml(recording_groups(specs))
    return files


def write(files: dict[str, str], directory: Path) -> list[Path]:
    written = []
    for relative, text in sorted(files.items()):
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
