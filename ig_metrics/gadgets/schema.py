"""The JSON Schema (draft 2020-12) of a gadget.yaml, generated from the tables
gadgets/spec.py reads it with, so that an editor checks a gadget while it is
typed (`ig-metrics gadgets schema`)."""

from __future__ import annotations

from typing import Any

from ig_metrics.config.fieldkinds import SCHEMA_DIALECT, without_env
from ig_metrics.gadgets.spec import GADGET


def json_schema() -> dict[str, Any]:
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "urn:ig-metrics:gadget-spec",
        "title": "ig-metrics gadget.yaml",
        "description": "A gadget's metric spec: its BPF program, the hooks it attaches "
                       "to, the maps it counts in and how kernel keys become the "
                       "attributes of metrics (docs/gadget-format.md). Read as written: "
                       "no ${env:...} expansion.",
        # the loader reads a gadget.yaml without ${env:...}: no env alternatives
        **without_env(GADGET.schema()),
    }
