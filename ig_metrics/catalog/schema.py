"""The JSON Schema (draft 2020-12) of a profiles file, generated from the same
tables the validator reads, so that editors check a file while it is typed."""

from __future__ import annotations

from typing import Any

from ig_metrics.catalog.tables import (
    EXPORTER_TYPES,
    NAME_PATTERN,
    PROFILE_FIELDS,
    SECTION_DOCS,
    TYPE_FIELD,
    exporter_fields,
)
from ig_metrics.config.fieldkinds import SCHEMA_DIALECT
from ig_metrics.config.fields import object_schema

ENV_REFERENCE_PATTERN = r"\$\{env:[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"


def json_schema() -> dict[str, Any]:
    def named(definition: str, section: str) -> dict[str, Any]:
        return {
            "description": SECTION_DOCS[section],
            "type": ["object", "null"],
            "propertyNames": {"$ref": "#/$defs/name"},
            "additionalProperties": {"$ref": f"#/$defs/{definition}"},
        }

    per_type = [
        {
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {"description": exporter_type.doc, **object_schema(exporter_fields(name))},
        }
        for name, exporter_type in EXPORTER_TYPES.items()
    ]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "urn:ig-metrics:profiles-file",
        "title": "ig-metrics profiles file",
        "description": "Exporter templates and the profiles that select them. "
                       "Strings may hold ${env:VAR} or ${env:VAR:-default}.",
        "type": ["object", "null"],
        "properties": {
            "exporters": named("exporter", "exporters"),
            "profiles": named("profile", "profiles"),
        },
        "additionalProperties": False,
        "$defs": {
            "name": {"type": "string", "pattern": f"^{NAME_PATTERN}$"},
            "envReference": {
                "description": "A string holding ${env:VAR} or ${env:VAR:-default}, "
                               "checked when the file is loaded.",
                "type": "string",
                "pattern": ENV_REFERENCE_PATTERN,
            },
            "exporter": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": TYPE_FIELD.schema()},
                "allOf": per_type,
            },
            "profile": object_schema(PROFILE_FIELDS),
        },
    }
