"""The one table of what a profiles file may hold: the settings every exporter
template has (type, interval, description), those of each exporter type (its
own module declares them; exporters/registry.py lists the types) and those of a
profile. The validator, the JSON Schema and the docs test all read it."""

from __future__ import annotations

from ig_metrics.catalog.attributenames import AttributeNamesKind
from ig_metrics.config.fieldkinds import Choice, DurationKind, FlagKind, NameList, TextKind
from ig_metrics.config.fields import Field, Section
from ig_metrics.config.model import DEFAULT_INTERVAL, DEFAULT_SAMPLER_MAX_SERIES
from ig_metrics.config.quantities import IntKind
from ig_metrics.exporters.registry import EXPORTER_TYPES

NAME_PATTERN = r"[a-z0-9][a-z0-9._-]*"
NAME_RULE = ("names use lowercase letters, digits, '.', '_' and '-', and start with a "
             "letter or a digit")


def interval_field(scope: str) -> Field:
    return Field(
        "interval", DurationKind(),
        f"How often {scope} exported. An exporter's own interval wins over its profile's, "
        f"`run --interval` wins over both, and the default is "
        f"{DEFAULT_INTERVAL:g}s.",
        "15s")


def description_field(what: str) -> Field:
    return Field("description", TextKind(),
                 f"What this {what} is for, in a sentence; `exporters list` shows it.",
                 "Scrape on this host")


TYPE_FIELD = Field("type", Choice(tuple(EXPORTER_TYPES), noun="exporter type"),
                   "The kind of exporter: " + ", ".join(EXPORTER_TYPES) + ".",
                   "otlp-grpc", required=True)
COMMON_EXPORTER_FIELDS = (TYPE_FIELD, interval_field("this exporter's metrics are"),
                          description_field("exporter"))

PROFILE_FIELDS = (
    Field("exporters", NameList("exporter", "[prom-local, central]"),
          "The exporter templates this profile runs, by name, from any file.",
          ["prom-local"], required=True),
    Field("gadgets", NameList("gadget", "[tcp, dns, blockio]"),
          "The gadgets `run --profile NAME` runs, in one process, when the command line "
          "names none: built-in names or gadget folders. `--gadget` replaces the list.",
          ["tcp", "dns"]),
    interval_field("metrics are"),
    description_field("profile"),
    Field("sampler", Section((
        Field("max_series", IntKind(2),
              "The most series the sampler keeps apart (about 1.2 KB of memory each); "
              "kernel keys seen once it is reached are summed into one series with "
              "the attribute otel.metric.overflow=true, for as long as they live.",
              100000, default=DEFAULT_SAMPLER_MAX_SERIES,
              default_shown=DEFAULT_SAMPLER_MAX_SERIES),
    ), owner="sampler"),
          "The sampler's memory budget.", {"max_series": 100000}),
    Field("attributes", Section((
        Field("include", AttributeNamesKind(),
              "Keep only these attributes on every series (a name ending in * keeps "
              "every attribute with that prefix, e.g. k8s.*); series that become alike "
              "are summed, exactly. An opt-in attribute named in full is kept too. "
              "Default: every attribute but the opt-in ones.",
              ["process.command", "container.id", "k8s.*"], default=(), default_shown=[]),
        Field("exclude", AttributeNamesKind(),
              "Drop these attributes from every series ('*' at the end: a prefix), "
              "after include and opt_in; series that become alike are summed, exactly. "
              "Names no built-in gadget has are warned about, and refused by `run` when "
              "the gadget run has none of them either.",
              ["network.peer.address"], default=(), default_shown=[]),
        Field("opt_in", AttributeNamesKind(prefixes=False),
              "Keep these opt-in attributes, which series leave out by default (of the "
              "built-in gadgets, tcp's process.pid: a series per process instance, so "
              "every short-lived process adds its own; left out, the series of one "
              "command are summed, exactly). `gadgets describe` marks them. Names in "
              "full, no prefix.",
              ["process.pid"], default=(), default_shown=[]),
        Field("pod_labels", FlagKind(),
              "Add each pod's labels as k8s.pod.label.<key> (needs the Kubernetes API, "
              "see docs/kubernetes.md). Off by default: every label value multiplies "
              "the series of its pods.",
              True, default=False, default_shown=False),
    ), owner="attributes"),
          "Which attributes the series carry: the cardinality knob.",
          {"opt_in": ["process.pid"]}),
)


def exporter_fields(type_name: str) -> tuple[Field, ...]:
    return COMMON_EXPORTER_FIELDS + EXPORTER_TYPES[type_name].fields

SECTION_DOCS = {
    "exporters": "Named exporter templates. A name is unique across all files.",
    "profiles": "Named selections of exporter templates; `run --profile NAME` picks one.",
}
