"""Every profiles file merged into one catalog: names unique across files, each
profile checked against the exporters it names, and a profile resolved for a run."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ig_metrics.catalog.profilefile import ProfilesFile, read_profiles_file
from ig_metrics.config.addresses import HostPort, listeners_collide
from ig_metrics.config.errors import ConfigError
from ig_metrics.config.fieldkinds import HIDDEN
from ig_metrics.config.model import (
    DEFAULT_INTERVAL,
    ExporterTemplate,
    Problem,
    Profile,
    ProfileConfig,
    ResolvedExporter,
)
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.exporters.prometheus.exporter import PrometheusSettings

PROFILE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class Catalog:
    """The merged content of the profiles files; `problems` says what is wrong.

    `exporters` and `profiles` hold only the valid ones; `declared_*` every name
    written, valid or not, with where it was written.
    """

    exporters: dict[str, ExporterTemplate] = field(default_factory=dict)
    profiles: dict[str, ProfileConfig] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)
    declared_exporters: dict[str, Location] = field(default_factory=dict)
    declared_profiles: dict[str, Location] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "warning"]

    def users_of(self, exporter: str) -> list[str]:
        """The valid profiles that name `exporter`."""
        return [name for name, profile in self.profiles.items() if exporter in profile.exporters]

    def raise_for_errors(self) -> None:
        errors = self.errors
        if errors:
            count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
            raise ConfigError(f"{count} in the profiles in {self.describe_sources()}", errors)

    def describe_sources(self) -> str:
        return ", ".join(str(source) for source in self.sources) or "(no files)"

    def profile(self, name: str, interval_override: float | None = None) -> Profile:
        """`name` resolved for a run: each exporter's interval is `interval_override`
        if given, else its own, else the profile's, else DEFAULT_INTERVAL."""
        self.raise_for_errors()
        if interval_override is not None and not interval_override > 0:
            raise ConfigError(f"the interval must be more than zero, got {interval_override:g}s")
        config = self.profiles.get(name)
        if config is None:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(f"unknown profile '{name}'{did_you_mean(name, self.profiles) or '.'} "
                              f"Known profiles: {known} (from {self.describe_sources()})")
        resolved: list[ResolvedExporter] = []
        for template in (self.exporters[exporter] for exporter in config.exporters):
            requested = _interval(template, config, interval_override)
            floor = template.settings.limits.min_interval or 0.0
            resolved.append(ResolvedExporter(template, max(requested, floor), requested))
        return Profile(config.name, config.description, tuple(resolved), config.file,
                       config.sampler_max_series, config.attributes, config.gadgets)


def _interval(template: ExporterTemplate, profile: ProfileConfig,
              override: float | None) -> float:
    for interval in (override, template.interval, profile.interval):
        if interval is not None:
            return interval
    return DEFAULT_INTERVAL


def load_catalog(paths: Sequence[Path], environ: Mapping[str, str] | None = None) -> Catalog:
    """Read every profiles file in `paths` (files, or directories of *.yaml and
    *.yml) into one catalog. User mistakes become `Catalog.problems`, never raised."""
    environ = os.environ if environ is None else environ
    catalog = Catalog(sources=list(paths))
    catalog.files = _profile_files(paths, catalog.problems)
    read = [read_profiles_file(path, environ) for path in catalog.files]
    for profiles_file in read:
        catalog.problems.extend(profiles_file.problems)
        _merge(profiles_file, catalog)
    for profiles_file in read:
        _check_profiles(profiles_file, catalog)
    _warn_unused(catalog, read)
    order = {str(path): index for index, path in enumerate(catalog.files)}
    catalog.problems.sort(key=lambda problem: (order.get(problem.file, -1), problem.line))
    return catalog


def _profile_files(paths: Sequence[Path], problems: list[Problem]) -> list[Path]:
    files: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found = sorted(child for child in path.iterdir()
                           if child.suffix in PROFILE_SUFFIXES and child.is_file()
                           and not child.name.startswith("."))
            if not found:
                problems.append(Problem(str(path), 0, "no *.yaml files in this directory",
                                        "warning"))
        elif path.is_file():
            found = [path]
        else:
            problems.append(Problem(str(path), 0, "no such file or directory"))
            continue
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files


def _merge(profiles_file: ProfilesFile, catalog: Catalog) -> None:
    file = str(profiles_file.path)
    for exporter in profiles_file.exporters:
        if _declare("exporter", exporter.name, Location(file, exporter.line),
                    catalog.declared_exporters, catalog.problems) and exporter.template:
            catalog.exporters[exporter.name] = exporter.template
    for profile in profiles_file.profiles:
        if _declare("profile", profile.name, Location(file, profile.line),
                    catalog.declared_profiles, catalog.problems) and profile.config:
            catalog.profiles[profile.name] = profile.config


def _declare(noun: str, name: str, where: Location, declared: dict[str, Location],
             problems: list[Problem]) -> bool:
    first = declared.get(name)
    if first is not None:
        problems.append(Problem(where.file, where.line,
                                f"{noun} '{name}' is defined twice: here and at {first}; "
                                "names must be unique across all files"))
        return False
    declared[name] = where
    return True


def _check_profiles(profiles_file: ProfilesFile, catalog: Catalog) -> None:
    file = str(profiles_file.path)
    for profile in profiles_file.profiles:
        site = f"profiles.{profile.name}.exporters"
        listeners: list[ExporterTemplate] = []
        for name, line, from_env in profile.references or ():
            if name not in catalog.declared_exporters:
                catalog.problems.append(Problem(file, line, _unknown_exporter(
                    site, name, from_env, sorted(catalog.declared_exporters))))
                continue
            template = catalog.exporters.get(name)
            if template is None or not isinstance(template.settings, PrometheusSettings):
                continue
            for other in listeners:
                if listeners_collide(_listen(other), _listen(template)):
                    catalog.problems.append(Problem(file, line, _collision(site, other, template)))
            listeners.append(template)


def _unknown_exporter(site: str, name: str, from_env: bool, known: list[str]) -> str:
    if from_env:
        return (f"{site}: unknown exporter {HIDDEN}. "
                f"Known exporters: {', '.join(known) or 'none are defined'}")
    return (f"{site}: unknown exporter '{name}'{did_you_mean(name, known) or '.'} "
            f"Known exporters: {', '.join(known) or 'none are defined'}")


def _listen(template: ExporterTemplate) -> HostPort:
    settings = template.settings
    assert isinstance(settings, PrometheusSettings)
    return HostPort(settings.host, settings.port)


def _collision(site: str, first: ExporterTemplate, second: ExporterTemplate) -> str:
    def named(template: ExporterTemplate) -> str:
        return f"'{template.name}' ({template.redacted()['settings']['listen']})"
    return (f"{site}: prometheus exporters {named(first)} and {named(second)} cannot both "
            "listen: they need the same port; give each its own listen address")


def _warn_unused(catalog: Catalog, read: Sequence[ProfilesFile]) -> None:
    # Profiles with errors count too: their own errors say enough.
    referenced = {name for profiles_file in read for profile in profiles_file.profiles
                  for name, _, _ in profile.references or ()}
    for name, template in catalog.exporters.items():
        if name not in referenced:
            catalog.problems.append(Problem(template.file, template.line,
                                            f"exporters.{name}: not used by any profile",
                                            "warning"))
