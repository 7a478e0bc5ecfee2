"""Where a value being validated sits (file, setting path) and where its problems,
and the paths of its secret values, are recorded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ig_metrics.config.model import Problem


@dataclass(frozen=True, slots=True)
class Site:
    """A setting's dotted path as shown to people ("exporters.central.timeout") and
    as recorded in ExporterTemplate.secrets, relative to its template ("timeout")."""

    shown: str
    key: str = ""

    def child(self, name: str) -> Site:
        return Site(f"{self.shown}.{name}", f"{self.key}.{name}" if self.key else name)

    def item(self, index: int) -> Site:
        """The site of a list's item, counted from 0 (`hooks[0]`)."""
        return Site(f"{self.shown}[{index}]", f"{self.key}[{index}]")

    def __str__(self) -> str:
        return self.shown


@dataclass(slots=True)
class FileContext:
    """One YAML file being validated."""

    file: str
    base_dir: Path                    # relative paths in the file are relative to this
    environ: Mapping[str, str]
    problems: list[Problem] = field(default_factory=list)
    # Secret setting paths of the template or profile being read; reset per item.
    secrets: set[str] = field(default_factory=set)
    # Whether ${env:...} in a string is replaced (profiles); a gadget.yaml is
    # data shipped with its program, read as written.
    expand_env: bool = True

    def error(self, line: int, message: str, column: int = 0) -> None:
        self.problems.append(Problem(self.file, line, message, "error", column))

    def warning(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message, "warning"))

    # How many of `problems` error_count has looked at, and the errors among them:
    # it is asked after every item, and a file may hold thousands of problems.
    _counted: int = field(default=0, init=False, repr=False, compare=False)
    _errors: int = field(default=0, init=False, repr=False, compare=False)

    @property
    def error_count(self) -> int:
        if len(self.problems) < self._counted:          # the list was cut: count again
            self._counted = self._errors = 0
        for index in range(self._counted, len(self.problems)):
            self._errors += self.problems[index].severity == "error"
        self._counted = len(self.problems)
        return self._errors
