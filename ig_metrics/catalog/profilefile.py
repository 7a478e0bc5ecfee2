"""Reads one profiles file: YAML nodes checked against the tables, giving exporter
templates, profiles and every problem of the file at once."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ig_metrics.catalog.tables import (
    EXPORTER_TYPES,
    NAME_PATTERN,
    NAME_RULE,
    PROFILE_FIELDS,
    TYPE_FIELD,
    exporter_fields,
)
from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.fields import parse_fields, require_mapping
from ig_metrics.config.model import (
    DEFAULT_SAMPLER_MAX_SERIES,
    AttributeSelection,
    ExporterTemplate,
    Problem,
    ProfileConfig,
)
from ig_metrics.config.rules import ExporterDraft
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.config.yamlnodes import Entry, read_yaml_file, scalar_value
from ig_metrics.gadgets import builtin_names


@dataclass(slots=True)
class DeclaredExporter:
    name: str
    line: int
    template: ExporterTemplate | None          # None when it has errors


@dataclass(slots=True)
class DeclaredProfile:
    name: str
    line: int
    # (exporter name, line, from_env) as listed; None when the list is unreadable.
    references: tuple[tuple[str, int, bool], ...] | None
    config: ProfileConfig | None               # None when it has errors


@dataclass(slots=True)
class ProfilesFile:
    path: Path
    exporters: list[DeclaredExporter] = field(default_factory=list)
    profiles: list[DeclaredProfile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_profiles_file(path: Path, environ: Mapping[str, str]) -> ProfilesFile:
    ctx = FileContext(str(path), path.parent, environ)
    result = ProfilesFile(path, problems=ctx.problems)
    root = read_yaml_file(path, ctx.error)
    if root is None or (isinstance(root, yaml.ScalarNode) and scalar_value(root) is None):
        return result
    entries = require_mapping(root, Site("top level"), ctx,
                              "a mapping with exporters: and/or profiles: at the top")
    for key, entry in (entries or {}).items():
        reader = SECTION_READERS.get(key)
        if reader is None:
            ctx.error(entry.line, f"unknown top-level key '{key}'"
                                  f"{did_you_mean(key, SECTION_READERS) or '.'} "
                                  f"Allowed keys: {', '.join(SECTION_READERS)}")
            continue
        reader(entry, ctx, result)
    return result


def read_exporters(section: Entry, ctx: FileContext, result: ProfilesFile) -> None:
    for name, entry in _named_items(section, ctx, "exporter templates"):
        result.exporters.append(DeclaredExporter(name, entry.line, read_exporter(entry, ctx)))


def read_profiles(section: Entry, ctx: FileContext, result: ProfilesFile) -> None:
    for _, entry in _named_items(section, ctx, "profiles"):
        result.profiles.append(read_profile(entry, ctx))


SECTION_READERS: dict[str, Callable[[Entry, FileContext, ProfilesFile], None]] = {
    "exporters": read_exporters,
    "profiles": read_profiles,
}


def _named_items(section: Entry, ctx: FileContext, what: str) -> list[tuple[str, Entry]]:
    """The name: body pairs of a section; a null section is an empty one."""
    node = section.value
    if isinstance(node, yaml.ScalarNode) and scalar_value(node) is None:
        return []
    entries = require_mapping(node, Site(section.key), ctx, f"a mapping of named {what}")
    if entries is None:
        return []
    for name, entry in entries.items():
        if not re.fullmatch(NAME_PATTERN, name):
            ctx.error(entry.line, f"{section.key}.{name}: invalid name '{name}'; {NAME_RULE}")
    return list(entries.items())


def read_exporter(entry: Entry, ctx: FileContext) -> ExporterTemplate | None:
    site = Site(f"exporters.{entry.key}")
    ctx.secrets = set()
    errors_before = ctx.error_count
    settings = require_mapping(entry.value, site, ctx,
                               "a mapping of settings, e.g. {type: prometheus}")
    if settings is None:
        return None
    if "type" not in settings:
        ctx.error(entry.line, f"{site}: missing required key 'type' "
                              f"(one of {', '.join(EXPORTER_TYPES)})")
        return None
    exporter_type = TYPE_FIELD.kind.parse(settings["type"].value, site.child("type"), ctx)
    if exporter_type is None:
        return None   # without a known type, which keys are allowed is unknown
    kind = EXPORTER_TYPES[exporter_type.value]
    read = parse_fields(settings, exporter_fields(kind.name), site, ctx,
                        f"{kind.name} exporters", entry.line)
    draft = ExporterDraft(site, entry.line, read.values, read.lines)
    for rule in kind.rules:
        rule(draft, ctx)
    if ctx.error_count > errors_before:
        return None
    return ExporterTemplate(
        name=entry.key,
        type=kind.name,
        settings=kind.build(draft.values),
        interval=draft.values.get("interval"),
        file=ctx.file,
        line=entry.line,
        secrets=frozenset(ctx.secrets),
        description=draft.values.get("description", ""),
    )


def _check_gadget_names(names: tuple[tuple[str, int, bool], ...], site: Site,
                        ctx: FileContext) -> None:
    """A profile's gadgets are built-in names or gadget folders (a path: a '/'
    in it); a folder is read when a run starts, a name is known now."""
    builtin = builtin_names()
    for name, line, _ in names:
        if "/" not in name and name not in builtin:
            ctx.error(line, f"{site}: unknown gadget '{name}'{did_you_mean(name, builtin)}; "
                            f"available: {', '.join(builtin)} (or a path to a gadget folder, "
                            "with a '/')")


def read_profile(entry: Entry, ctx: FileContext) -> DeclaredProfile:
    site = Site(f"profiles.{entry.key}")
    ctx.secrets = set()
    errors_before = ctx.error_count
    body = require_mapping(entry.value, site, ctx,
                           "a mapping of settings, e.g. {exporters: [prom-local]}")
    if body is None:
        return DeclaredProfile(entry.key, entry.line, None, None)
    read = parse_fields(body, PROFILE_FIELDS, site, ctx, "profiles", entry.line)
    references = read.values.get("exporters")
    _check_gadget_names(read.values.get("gadgets", ()), site.child("gadgets"), ctx)
    if ctx.error_count > errors_before or references is None:
        return DeclaredProfile(entry.key, entry.line, references, None)
    config = ProfileConfig(
        name=entry.key,
        description=read.values.get("description", ""),
        exporters=tuple(name for name, _, _ in references),
        interval=read.values.get("interval"),
        file=ctx.file,
        line=entry.line,
        exporter_lines=tuple(line for _, line, _ in references),
        secrets=frozenset(ctx.secrets),
        sampler_max_series=read.values.get("sampler", {}).get(
            "max_series", DEFAULT_SAMPLER_MAX_SERIES),
        attributes=AttributeSelection(file=ctx.file, **read.values.get("attributes", {})),
        gadgets=tuple(name for name, _, _ in read.values.get("gadgets", ())),
    )
    return DeclaredProfile(entry.key, entry.line, references, config)
