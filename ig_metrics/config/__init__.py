"""Profiles and exporter templates: finding the profiles directory, loading and
validating its YAML files into a Catalog, and resolving a profile for a run."""

from ig_metrics.config.catalog import Catalog, Location, load_catalog
from ig_metrics.config.directories import (
    BUILTIN_PROFILES_DIR, PROFILES_DIR_VARIABLE, resolve_profiles_dir,
)
from ig_metrics.config.durations import format_duration, parse_duration
from ig_metrics.config.envvars import Expansion, expand_env
from ig_metrics.config.errors import ConfigError
from ig_metrics.config.model import (
    DEFAULT_INTERVAL, REDACTED, ExporterTemplate, Problem, Profile, ProfileConfig,
    ResolvedExporter,
)
from ig_metrics.config.schema import json_schema
from ig_metrics.config.tables import EXPORTER_TYPES

__all__ = [
    "BUILTIN_PROFILES_DIR", "DEFAULT_INTERVAL", "EXPORTER_TYPES", "PROFILES_DIR_VARIABLE",
    "REDACTED", "Catalog", "ConfigError", "Expansion", "ExporterTemplate", "Location",
    "Problem", "Profile", "ProfileConfig", "ResolvedExporter", "expand_env",
    "format_duration", "json_schema", "load_catalog", "parse_duration",
    "resolve_profiles_dir",
]
