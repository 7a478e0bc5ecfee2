"""A snapshot's metrics as prometheus_client metric families: names
translated as naming.py says, classic histograms, resource attributes as
`target_info`. What prometheus_client's own encoders render."""

from __future__ import annotations

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ig_metrics.exporters.prometheus import naming
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    MetricInfo,
    Snapshot,
)

TARGET_INFO_HELP = "Target metadata"


def target_info(snapshot: Snapshot) -> Metric | None:
    """The resource attributes as one `target_info` series; None without any."""
    if not snapshot.resource:
        return None
    labels = {naming.label_name(key): naming.label_value(value)
              for key, value in snapshot.resource}
    return InfoMetricFamily("target", TARGET_INFO_HELP, value=labels)


def empty_family(info: MetricInfo) -> Metric:
    """The family of a metric without its samples: name, help, unit and type."""
    name = naming.prometheus_metric_name(info.name, info.unit, info.kind)
    help_text = info.description or f"OpenTelemetry metric {info.name}"
    family_name = name.removesuffix("_total") if info.kind == COUNTER else name
    unit = naming.unit_suffix(info.unit, info.kind)
    unit = unit if unit and family_name.endswith(f"_{unit}") else ""
    if info.kind == COUNTER:
        return CounterMetricFamily(name, help_text, unit=unit)
    if info.kind == GAUGE:
        return GaugeMetricFamily(name, help_text, unit=unit)
    if info.kind == HISTOGRAM:
        return HistogramMetricFamily(name, help_text, unit=unit)
    raise ValueError(f"metric {info.name}: unknown kind {info.kind!r}")


def fill_family(family: Metric, data: MetricData) -> Metric:
    """`family` with the samples of `data`; series may differ in attribute names
    (an overflow series, for instance), so labels are built per series."""
    info = data.info
    name = naming.prometheus_metric_name(info.name, info.unit, info.kind)
    le_values = [floatToGoString(bound) for bound in info.bounds]
    samples = family.samples
    for point in data.points:
        plan = naming.label_plan(tuple(key for key, _ in point.attributes))
        labels = dict(zip(plan.names, plan.values(point.attributes)))
        value = point.value
        if not isinstance(value, HistogramValue):
            samples.append(Sample(name, labels, value))
            continue
        check_buckets(info, value)
        # Prometheus buckets count everything <= le, ours one bucket each; bounds
        # are upper-inclusive on both sides, so a value on a bound stays in it.
        running = 0
        for le, count in zip(le_values, value.counts):
            running += count
            samples.append(Sample(f"{name}_bucket", {**labels, "le": le}, running))
        samples.append(Sample(f"{name}_bucket", {**labels, "le": "+Inf"}, value.count))
        samples.append(Sample(f"{name}_count", labels, value.count))
        samples.append(Sample(f"{name}_sum", labels, value.sum))
    return family


def check_buckets(info: MetricInfo, value: HistogramValue) -> None:
    if len(value.counts) != len(info.bounds) + 1:
        raise ValueError(f"metric {info.name}: {len(value.counts)} bucket counts for "
                         f"{len(info.bounds)} bounds")
