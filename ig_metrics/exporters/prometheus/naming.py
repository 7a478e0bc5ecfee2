"""OpenTelemetry names to Prometheus names, as the OpenTelemetry "Prometheus and
OpenMetrics compatibility" specification translates them (underscores, unit and
`_total` suffixes, sanitised label names)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ig_metrics.model.snapshot import COUNTER, GAUGE, AttrValue

# UCUM units and the word Prometheus names carry for them.
UNIT_WORDS: dict[str, str] = {
    # time
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds",
    "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds",
    # information
    "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes",
    "TBy": "terabytes", "bit": "bits",
    # SI
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts",
    "g": "grams", "Cel": "celsius", "Hz": "hertz",
    "%": "percent",
}
# The denominator of a rate unit ("By/s" -> bytes_per_second).
PER_UNIT_WORDS: dict[str, str] = {
    "s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week",
    "mo": "month", "y": "year",
}

_ANNOTATION = re.compile(r"\{[^}]*\}")     # UCUM annotations such as {connection}
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_NOT_LABEL_CHAR = re.compile(r"[^A-Za-z0-9_]")


def _tokens(text: str) -> list[str]:
    return [token for token in _NOT_ALNUM.split(text) if token]


@lru_cache(maxsize=1024)
def unit_suffix(unit: str, kind: str) -> str:
    """The suffix a unit adds to a metric name ("" for none): By -> bytes,
    {connection} -> "", 1 -> ratio for gauges only, By/s -> bytes_per_second."""
    unit = _ANNOTATION.sub("", unit).strip()
    if unit == "1":
        return "ratio" if kind == GAUGE else ""
    main, slash, per = unit.partition("/")
    words: list[str] = []
    if main and main != "1":
        words += _tokens(UNIT_WORDS.get(main, main))
    if slash and per:
        words += ["per"] + _tokens(PER_UNIT_WORDS.get(per, per))
    return "_".join(words)


@lru_cache(maxsize=1024)
def prometheus_metric_name(name: str, unit: str, kind: str) -> str:
    """The Prometheus name of a metric, as its samples show it without the
    histogram `_bucket`/`_sum`/`_count` endings: tcp.sent (By, counter) ->
    tcp_sent_bytes_total, tcp.connect.duration (s, histogram) ->
    tcp_connect_duration_seconds. A suffix already in the name is not repeated."""
    tokens = _tokens(name)
    if kind == COUNTER and tokens and tokens[-1] == "total":
        tokens.pop()              # re-added last, after the unit
    suffix = _tokens(unit_suffix(unit, kind))
    if suffix and not _contains_run(tokens, suffix):
        tokens += suffix
    if kind == COUNTER:
        tokens.append("total")
    text = "_".join(tokens) or "_"
    return f"_{text}" if text[0].isdigit() else text


def _contains_run(tokens: list[str], run: list[str]) -> bool:
    width = len(run)
    return any(tokens[start:start + width] == run for start in range(len(tokens) - width + 1))


@lru_cache(maxsize=4096)
def label_name(attribute: str) -> str:
    """A Prometheus label name for an attribute name: process.pid -> process_pid;
    a leading digit gets `key_`, a leading `__` (reserved) gets `key`."""
    name = _NOT_LABEL_CHAR.sub("_", attribute)
    if not name:
        return "key_"
    if name[0].isdigit():
        return f"key_{name}"
    if name.startswith("__"):
        return f"key{name}"
    return name


def label_value(value: AttrValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class LabelPlan:
    """How the attributes of one series become labels. Attributes whose names
    collide once sanitised share one label, values joined with ';' in the order
    of their original names, as the specification says."""

    names: tuple[str, ...]
    # For each label, the positions in the attribute tuple that feed it.
    sources: tuple[tuple[int, ...], ...]
    simple: bool                  # one attribute per label, in order

    def values(self, attributes: tuple[tuple[str, AttrValue], ...]) -> list[str]:
        if self.simple:
            return [label_value(value) for _, value in attributes]
        return [";".join(label_value(attributes[index][1]) for index in indexes)
                for indexes in self.sources]


@lru_cache(maxsize=4096)
def label_plan(attribute_names: tuple[str, ...]) -> LabelPlan:
    grouped: dict[str, list[tuple[str, int]]] = {}
    for index, attribute in enumerate(attribute_names):
        grouped.setdefault(label_name(attribute), []).append((attribute, index))
    names = tuple(grouped)
    sources = tuple(tuple(index for _, index in sorted(members)) for members in grouped.values())
    simple = all(len(members) == 1 for members in grouped.values())
    return LabelPlan(names, sources, simple)
