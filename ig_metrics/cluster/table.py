"""The cluster-wide table, merged from the nodes' summaries: the busiest series
of every node together, and the totals per node and for the cluster.

The merged top N is exact: each node sends its own top N by the same key
(live rows first, then the sort column's rate, then its total), and a series
in the cluster's top N is in its node's top N (no node can have more than N
series above it). Totals are exact too: each node sums every
series it has, not only those it sends."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ig_metrics.cluster.watch import ClusterReading
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.summary.rows import Row, sort_value


@dataclass(frozen=True, slots=True)
class ClusterRow:
    node: str
    row: Row                     # rates, totals and percentiles, as the node computed them


def cluster_rows(spec: GadgetSpec, reading: ClusterReading, *, top: int,
                 sort: str) -> list[ClusterRow]:
    """The `top` busiest series of gadget `spec` across the read nodes."""
    attribute_names = [attribute.name for attribute in spec.attributes]
    rows = [ClusterRow(node.node, row) for node in reading.ready() if node.summary is not None
            for gadget in [node.summary.gadget(spec.name)] if gadget is not None
            for row in gadget.rows]
    return heapq.nlargest(top, rows, key=lambda entry: (
        not entry.row.idle, sort_value(entry.row, sort, attribute_names)))


def cluster_totals(spec: GadgetSpec, reading: ClusterReading) -> tuple[int, dict[str, float]]:
    """(series, counter column -> total) of gadget `spec` over the read nodes."""
    series = 0
    totals: dict[str, float] = {}
    for node in reading.ready():
        gadget = node.summary.gadget(spec.name) if node.summary is not None else None
        if gadget is None:
            continue
        series += gadget.series
        for name, value in gadget.totals.items():
            totals[name] = totals.get(name, 0) + value
    return series, totals
