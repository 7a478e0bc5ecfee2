"""What `exporters list` shows of a catalog, built from redacted data only so that
no secret can reach any output format."""

from __future__ import annotations

from typing import Any

from ig_metrics.catalog.loading import Catalog
from ig_metrics.catalog.tables import EXPORTER_TYPES


def exporter_summaries(catalog: Catalog) -> list[dict[str, Any]]:
    """One row per exporter template, in file order."""
    rows = []
    for template in catalog.exporters.values():
        shown = template.redacted()
        exporter_type = EXPORTER_TYPES[template.type]
        rows.append({
            "name": template.name,
            "type": template.type,
            "address": (shown["settings"][exporter_type.address_key]
                        if exporter_type.address_key else exporter_type.fixed_address),
            "interval": shown["interval"],       # None: the profile's (or the default)
            "temporality": shown["settings"].get("temporality"),
            "profiles": catalog.users_of(template.name),
            "description": shown["description"],
            "file": template.file,
            "line": template.line,
            "settings": shown["settings"],
        })
    return rows


def profile_summaries(catalog: Catalog) -> list[dict[str, Any]]:
    return [profile.redacted() for profile in catalog.profiles.values()]
