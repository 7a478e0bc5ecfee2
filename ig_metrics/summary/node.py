"""The node summary: what an agent tells the cluster CLI about itself at one
reading, small whatever its number of series. Per gadget its top N rows for a
sort column (rates, totals and percentiles computed on the node), its series
count and its totals (exact, over every series); the exporters' health; the
agent's own cost. Served as JSON on the agent's --health-listen (/summary),
read through the API server's pod proxy.

The format carries its version (FORMAT): a reader refuses another one with a
message that names both versions, rather than misreading it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import Snapshot
from ig_metrics.summary.rows import Row, gadget_table, sort_columns

FORMAT = 1
SUMMARY_PATH = "/summary"
MAX_TOP = 100                 # rows per gadget a request may ask for
MAX_VALUE_CHARS = 200         # an attribute value is cut there: the size stays bounded


class SummaryError(ValueError):
    """An answer that is not a summary this CLI can read (the message says why)."""


@dataclass(frozen=True, slots=True)
class ExporterLine:
    name: str
    type: str
    health: str                  # starting, healthy, degraded, failing, recovering
    interval: float = 0.0        # seconds between its exports (0: not said)
    detail: str = ""             # last scrape (pull) or last export (push), or the error


@dataclass(frozen=True, slots=True)
class GadgetSummary:
    name: str
    sort: str
    series: int
    totals: dict[str, float]
    rows: list[Row]
    failure: str = ""            # why its last read failed, "" when it did not


@dataclass(frozen=True, slots=True)
class AgentCost:
    cpu_seconds: float           # the process' CPU time since it started
    rss_bytes: int
    tick_seconds: float          # the last tick's wall time


@dataclass(frozen=True, slots=True)
class NodeSummary:
    version: str                 # the agent's ig-metrics version
    time_ns: int                 # when the reading it summarises was taken
    elapsed: float               # seconds between that reading and the one before (rates)
    interval: float              # the agent's tick interval: how often this changes
    gadgets: tuple[GadgetSummary, ...]
    exporters: tuple[ExporterLine, ...] = ()
    cost: AgentCost | None = None

    def gadget(self, name: str) -> GadgetSummary | None:
        return next((gadget for gadget in self.gadgets if gadget.name == name), None)


def summarize(specs: Sequence[GadgetSpec], previous: Snapshot | None, current: Snapshot, *,
              sort: str | None, top: int, kept: dict[str, dict], failures: dict[str, str],
              window: Snapshot | None = None) -> tuple[GadgetSummary, ...]:
    """Each gadget's part of the summary from the agent's last two readings
    (percentiles and idleness over the recent window from `window`): its top
    `top` rows by `sort` (where it has that column, else its own default;
    UnknownSortColumn when no gadget has it), live ones first. `kept` holds,
    per gadget, what build_rows keeps from one reading to the next."""
    sorts = sort_columns(list(specs), sort)
    parts = []
    for spec, column in zip(specs, sorts, strict=True):
        table = gadget_table(spec, previous, current, top=min(top, MAX_TOP), sort=column,
                             kept=kept.setdefault(spec.name, {}), window=window)
        parts.append(GadgetSummary(spec.name, column, table.series, table.totals, table.rows,
                                   failures.get(spec.name, "")))
    return tuple(parts)


def encode(summary: NodeSummary) -> bytes:
    document = {
        "format": FORMAT,
        "version": summary.version,
        "time_ns": summary.time_ns,
        "elapsed": round(summary.elapsed, 6),
        "interval": summary.interval,
        "gadgets": [{"name": gadget.name, "sort": gadget.sort, "series": gadget.series,
                     "totals": gadget.totals, "failure": gadget.failure,
                     "rows": [_encode_row(row) for row in gadget.rows]}
                    for gadget in summary.gadgets],
        "exporters": [{"name": line.name, "type": line.type, "health": line.health,
                       "interval": line.interval, "detail": line.detail}
                      for line in summary.exporters],
    }
    if summary.cost is not None:
        document["cost"] = {"cpu_seconds": round(summary.cost.cpu_seconds, 3),
                            "rss_bytes": summary.cost.rss_bytes,
                            "tick_seconds": round(summary.cost.tick_seconds, 6)}
    return json.dumps(document, separators=(",", ":")).encode()


def _encode_row(row: Row) -> dict[str, Any]:
    return {"attributes": [[name, _bounded(value)] for name, value in row.attributes],
            "cells": {name: (list(cell) if isinstance(cell, tuple) else cell)
                      for name, cell in row.cells.items()},
            "totals": row.totals, "idle": row.idle}


def _bounded(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS - 1] + "…"
    return value


def decode(payload: bytes) -> NodeSummary:
    """The summary in `payload`; SummaryError when it is not one of FORMAT."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SummaryError(f"not a node summary (not JSON: {error})") from None
    if not isinstance(document, dict) or "format" not in document:
        raise SummaryError("not a node summary (no format field)")
    if document["format"] != FORMAT:
        raise SummaryError(
            f"the agent (ig-metrics {document.get('version', '?')}) serves summary format "
            f"{document['format']}, this CLI reads format {FORMAT}: use a CLI of the "
            "image's version, or deploy an image of this CLI's version")
    try:
        cost = document.get("cost")
        return NodeSummary(
            str(document["version"]), int(document["time_ns"]), float(document["elapsed"]),
            float(document["interval"]),
            tuple(GadgetSummary(gadget["name"], gadget["sort"], int(gadget["series"]),
                                dict(gadget["totals"]),
                                [_decode_row(row) for row in gadget["rows"]],
                                gadget.get("failure", ""))
                  for gadget in document["gadgets"]),
            tuple(ExporterLine(line["name"], line["type"], line["health"],
                               float(line.get("interval", 0.0)), line.get("detail", ""))
                  for line in document["exporters"]),
            AgentCost(float(cost["cpu_seconds"]), int(cost["rss_bytes"]),
                      float(cost["tick_seconds"])) if cost else None)
    except (KeyError, TypeError, ValueError) as error:
        raise SummaryError(f"a malformed node summary of format {FORMAT} "
                           f"({type(error).__name__}: {error})") from None


def _decode_row(row: dict[str, Any]) -> Row:
    return Row(tuple(map(tuple, row["attributes"])),
               {name: (tuple(cell) if isinstance(cell, list) else cell)
                for name, cell in row["cells"].items()},
               dict(row["totals"]), bool(row.get("idle", False)))
