"""The table-driven reader of YAML with line numbers (fields, kinds, the file
being read, the problems found), env expansion, durations and addresses, and
the typed settings every exporter and a profile share. Reading a profiles
directory into a catalog is the layer above (ig_metrics.catalog)."""

from ig_metrics.config.durations import format_duration, parse_duration
from ig_metrics.config.envvars import Expansion, expand_env
from ig_metrics.config.errors import ConfigError
from ig_metrics.config.model import (
    DEFAULT_INTERVAL,
    REDACTED,
    ExporterTemplate,
    Problem,
    Profile,
    ProfileConfig,
    ResolvedExporter,
)

__all__ = [
    "DEFAULT_INTERVAL", "REDACTED", "ConfigError", "Expansion", "ExporterTemplate",
    "Problem", "Profile", "ProfileConfig", "ResolvedExporter", "expand_env",
    "format_duration", "parse_duration",
]
