"""Profiles and exporter templates: finding the profiles directory, loading and
validating its YAML files into a Catalog (with the tables of every exporter
type), its JSON Schema and listing, and resolving a profile for a run."""

from ig_metrics.catalog.directories import (
    BUILTIN_PROFILES_DIR, PROFILES_DIR_VARIABLE, resolve_profiles_dir,
)
from ig_metrics.catalog.loading import Catalog, Location, load_catalog
from ig_metrics.catalog.schema import json_schema
from ig_metrics.catalog.tables import EXPORTER_TYPES

__all__ = [
    "BUILTIN_PROFILES_DIR", "EXPORTER_TYPES", "PROFILES_DIR_VARIABLE", "Catalog",
    "Location", "json_schema", "load_catalog", "resolve_profiles_dir",
]
