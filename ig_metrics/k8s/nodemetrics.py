"""A node's Prometheus exposition (read through the pod proxy) turned back
into what the live table reads: a Snapshot of the gadget's metrics under their
OpenTelemetry names and attributes, and the health of the node's exporters
(the ig_metrics.exporter.health self-metric). prometheus_client's parser reads
the text; naming.py's translation, run backwards from the gadget's spec, maps
names back."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from ig_metrics.catalog.attributenames import builtin_attribute_names
from ig_metrics.exporters.prometheus import naming
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.model.snapshot import (
    COUNTER, HISTOGRAM, HistogramValue, MetricData, MetricInfo, Point, Snapshot,
)

HEALTH_FAMILY = "ig_metrics_exporter_health"
INTERVAL_FAMILY = "ig_metrics_export_interval_seconds"
HEALTH_LABEL = "ig_metrics_exporter_health"
NAME_LABEL, TYPE_LABEL = "otel_component_name", "otel_component_type"


@dataclass(frozen=True, slots=True)
class NodeExporter:
    name: str
    type: str
    health: str                  # starting, healthy, degraded, failing, recovering
    interval: float = 0.0        # seconds between its exports now (0: not said)


@dataclass(frozen=True, slots=True)
class NodeMetrics:
    snapshot: Snapshot
    exporters: tuple[NodeExporter, ...]


class ExpositionReader:
    """Reads one gadget's families out of expositions, again and again."""

    def __init__(self, spec: GadgetSpec) -> None:
        self.spec = spec
        # Family names as prometheus_client's parser gives them: counters without _total.
        self._families: dict[str, MetricInfo] = {}
        for metric in spec.metrics:
            if metric.name not in spec.table.columns:
                continue
            name = naming.prometheus_metric_name(metric.name, metric.unit, metric.kind)
            info = MetricInfo(metric.name, metric.kind, metric.unit, "",
                              tuple(metric.bounds) if metric.kind == HISTOGRAM else ())
            self._families[name.removesuffix("_total") if metric.kind == COUNTER
                           else name] = info
        self._attributes = {naming.label_name(name): name
                            for name in (*builtin_attribute_names(), *spec.attribute_names)
                            if not name.endswith("*")}
        # Decoded as integers by the sampler (decoder "int"): kept as such, so
        # that rows sort and compare as on the node.
        self._integers = frozenset(attribute.name for attribute in spec.attributes
                                   if attribute.decoder == "int")
        self._seq = 0

    def read(self, text: str, time_ns: int | None = None) -> NodeMetrics:
        self._seq += 1
        metrics: list[MetricData] = []
        exporters: list[NodeExporter] = []
        intervals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name == HEALTH_FAMILY:
                exporters.extend(NodeExporter(sample.labels.get(NAME_LABEL, ""),
                                              sample.labels.get(TYPE_LABEL, ""),
                                              sample.labels.get(HEALTH_LABEL, ""))
                                 for sample in family.samples if sample.value == 1)
                continue
            if family.name == INTERVAL_FAMILY:
                intervals.update((sample.labels.get(NAME_LABEL, ""), sample.value)
                                 for sample in family.samples)
                continue
            info = self._families.get(family.name)
            if info is None:
                continue
            points = (self._histogram_points(info, family.samples) if info.kind == HISTOGRAM
                      else self._number_points(info, family.samples))
            metrics.append(MetricData(info, tuple(points)))
        snapshot = Snapshot(self._seq, time_ns or time.time_ns(), self.spec.name, (),
                            tuple(metrics))
        return NodeMetrics(snapshot, tuple(NodeExporter(exporter.name, exporter.type,
                                                        exporter.health,
                                                        intervals.get(exporter.name, 0.0))
                                           for exporter in exporters))

    def _attributes_of(self, labels: dict[str, str], skip: str = "") -> tuple:
        pairs = []
        for label, value in labels.items():
            if label == skip:
                continue
            name = self._attributes.get(label, label)
            pairs.append((name, int(value) if name in self._integers and value.isdigit()
                          else value))
        return tuple(sorted(pairs))

    def _number_points(self, info: MetricInfo, samples) -> list[Point]:
        suffix = "_total" if info.kind == COUNTER else ""
        return [Point(self._attributes_of(sample.labels), _number(sample.value), 0)
                for sample in samples if sample.name.endswith(suffix)
                and not sample.name.endswith("_created")]

    def _histogram_points(self, info: MetricInfo, samples) -> list[Point]:
        series: dict[tuple, dict] = {}
        for sample in samples:
            key = self._attributes_of(sample.labels, skip="le")
            entry = series.setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0})
            if sample.name.endswith("_bucket"):
                entry["buckets"][float(sample.labels["le"])] = int(sample.value)
            elif sample.name.endswith("_sum"):
                entry["sum"] = sample.value
            elif sample.name.endswith("_count"):
                entry["count"] = int(sample.value)
        points = []
        for key, entry in series.items():
            cumulative = [entry["buckets"].get(bound, 0) for bound in info.bounds]
            cumulative.append(entry["buckets"].get(math.inf, entry["count"]))
            counts = [later - earlier for earlier, later in zip([0, *cumulative], cumulative)]
            points.append(Point(key, HistogramValue(tuple(counts), entry["sum"],
                                                    entry["count"]), 0))
        return points


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
