"""The SDK-path oracle: a Snapshot as OpenTelemetry SDK `MetricsData` (the public
data classes that the SDK's OTLP exporters take in `export()`) and encoded by the
SDK's own protobuf encoder, which the tests and benchmarks compare our own
encoder (exporters/otlp/wire.py) with."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics._internal.point import Buckets
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from ig_metrics import __version__
from ig_metrics.exporters.encoding.chunks import Encoded, split
from ig_metrics.exporters.encoding.log2native import layout_of, native_buckets
from ig_metrics.exporters.otlp.wire import SCOPE_NAME
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    HistogramValue,
    MetricData,
    Point,
    Snapshot,
)

SCOPE = InstrumentationScope(SCOPE_NAME, __version__)


def to_metrics_data(snapshot: Snapshot,
                    temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE,
                    exponential: bool = False) -> MetricsData:
    """Every metric of `snapshot` with at least one point, under one resource and
    the "ig-metrics" scope. `temporality` only labels counters and histograms:
    a delta snapshot must already hold differences (see exporters.delta).
    `exponential`: histograms of log2 slots as ExponentialHistograms, scale 0."""
    metrics = [_metric(data, snapshot.time_ns, temporality, exponential)
               for data in snapshot.metrics if data.points]
    scope_metrics = ScopeMetrics(scope=SCOPE, metrics=metrics, schema_url="")
    resource = Resource(dict(snapshot.resource))
    return MetricsData(resource_metrics=[
        ResourceMetrics(resource=resource, scope_metrics=[scope_metrics], schema_url=""),
    ])


def point_count(data: MetricsData) -> int:
    return sum(len(metric.data.data_points)
               for resource_metrics in data.resource_metrics
               for scope_metrics in resource_metrics.scope_metrics
               for metric in scope_metrics.metrics)


def _metric(data: MetricData, time_ns: int, temporality: AggregationTemporality,
            exponential: bool = False) -> Metric:
    info = data.info
    layout = layout_of(info) if exponential and info.kind == HISTOGRAM else None
    body: Sum | Gauge | Histogram | ExponentialHistogram
    if layout is not None:
        body = ExponentialHistogram(
            data_points=[_exponential_point(point, time_ns, layout) for point in data.points],
            aggregation_temporality=temporality)
    elif info.kind == COUNTER:
        body = Sum(
            data_points=[_number_point(point, time_ns) for point in data.points],
            aggregation_temporality=temporality, is_monotonic=True)
    elif info.kind == GAUGE:
        body = Gauge(data_points=[_number_point(point, time_ns) for point in data.points])
    elif info.kind == HISTOGRAM:
        body = Histogram(
            data_points=[_histogram_point(point, time_ns, info.bounds, info.name)
                         for point in data.points],
            aggregation_temporality=temporality)
    else:
        raise ValueError(f"metric {info.name}: unknown kind {info.kind!r}")
    return Metric(name=info.name, description=info.description, unit=info.unit, data=body)


def _number_point(point: Point, time_ns: int) -> NumberDataPoint:
    if isinstance(point.value, HistogramValue):
        raise TypeError("a histogram value in a counter or gauge")
    return NumberDataPoint(attributes=dict(point.attributes),
                           start_time_unix_nano=point.start_time_ns,
                           time_unix_nano=time_ns, value=point.value)


def _histogram_point(point: Point, time_ns: int, bounds: tuple[float, ...],
                     name: str) -> HistogramDataPoint:
    value = point.value
    if not isinstance(value, HistogramValue):
        raise TypeError(f"metric {name}: a histogram point without a HistogramValue")
    if len(value.counts) != len(bounds) + 1:
        raise ValueError(f"metric {name}: {len(value.counts)} bucket counts for "
                         f"{len(bounds)} bounds (expected {len(bounds) + 1})")
    # min and max are unknown from kernel buckets; None leaves the proto's
    # `optional double min/max` unset, which OTLP defines as "not recorded".
    return HistogramDataPoint(
        attributes=dict(point.attributes),
        start_time_unix_nano=point.start_time_ns,
        time_unix_nano=time_ns,
        count=value.count,
        sum=value.sum,
        bucket_counts=list(value.counts),
        explicit_bounds=list(bounds),
        min=None,  # type: ignore[arg-type]
        max=None,  # type: ignore[arg-type]
    )


def _exponential_point(point: Point, time_ns: int, layout) -> ExponentialHistogramDataPoint:
    """Scale 0; OTLP bucket j holds (2^j, 2^(j+1)], one below Prometheus' index."""
    value = point.value
    if not isinstance(value, HistogramValue):
        raise TypeError("a histogram point without a HistogramValue")
    buckets = native_buckets(layout, value)
    return ExponentialHistogramDataPoint(
        attributes=dict(point.attributes), start_time_unix_nano=point.start_time_ns,
        time_unix_nano=time_ns, count=value.count, sum=value.sum, scale=0,
        zero_count=buckets.zero_count,
        positive=Buckets(buckets.offset - 1 if buckets.counts else 0, list(buckets.counts)),
        negative=Buckets(0, []), flags=0,
        min=None, max=None,  # type: ignore[arg-type]  (unknown from slots: not recorded)
    )


def encode_with_sdk(snapshot: Snapshot, temporality: AggregationTemporality,
                    max_points: int, exponential: bool = False) -> Encoded:
    """What `encode` gives, made through the SDK's data classes and encoder:
    the reference for tests and benchmarks (about 15 times slower)."""
    chunks = split(snapshot, max_points)
    return Encoded(tuple(encode_metrics(to_metrics_data(chunk, temporality, exponential))
                         .SerializeToString()
                         for chunk in chunks),
                   tuple(chunk.point_count for chunk in chunks))
