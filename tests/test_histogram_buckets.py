"""Histogram buckets are exactly the kernel's log2 slots: values placed on
every boundary by a real BPF program land in the bucket whose exported
upper-inclusive bound is the first >= the value."""

from __future__ import annotations

import os

import pytest

from tests import histprobe
from tests.snapshots import points

pytestmark = pytest.mark.bpf

# Zero, every power of two and its neighbours up to the last exported bound
# (2^15 - 1 us), and values beyond it that must land in +Inf.
BOUNDARY_VALUES = sorted({0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 1023, 1024, 1025,
                          16383, 16384, 32766, 32767, 32768, 40000, 1 << 20})


def expected_counts(values: list[int], bounds_in_kernel_units: list[int]) -> list[int]:
    counts = [0] * (len(bounds_in_kernel_units) + 1)
    for value in values:
        index = next((i for i, bound in enumerate(bounds_in_kernel_units) if value <= bound),
                     len(bounds_in_kernel_units))
        counts[index] += 1
    return counts


@pytest.fixture(scope="module")
def probe_snapshot(bpf_available):
    return histprobe.record(BOUNDARY_VALUES)


def test_exported_bounds_are_the_kernel_slots(probe_snapshot):
    spec, snapshot = probe_snapshot
    metric = snapshot.metric("probe.value")
    kernel_bounds = [0] + [(1 << slot) - 1 for slot in range(1, 16)]
    assert list(metric.info.bounds) == [bound / 1e6 for bound in kernel_bounds]


def test_values_on_boundaries_land_in_the_right_bucket(probe_snapshot):
    spec, snapshot = probe_snapshot
    (point,) = points(snapshot, "probe.value", process__pid=os.getpid())
    kernel_bounds = [0] + [(1 << slot) - 1 for slot in range(1, 16)]
    assert list(point.value.counts) == expected_counts(BOUNDARY_VALUES, kernel_bounds)
    assert point.value.count == len(BOUNDARY_VALUES)
    assert point.value.sum == pytest.approx(sum(BOUNDARY_VALUES) / 1e6, rel=1e-12)
    # The same rule seen from the exported side: each value <= its bucket's bound.
    bounds = snapshot.metric("probe.value").info.bounds
    for value in BOUNDARY_VALUES:
        index = next((i for i, bound in enumerate(bounds) if value / 1e6 <= bound), len(bounds))
        assert point.value.counts[index] >= 1


def test_kernel_buckets_reach_otlp_and_prometheus_unchanged(probe_snapshot):
    """The same snapshot through a real OTLP/gRPC receiver and a Prometheus
    scrape: OTLP carries the kernel bounds and counts as they are; Prometheus
    shows them as cumulative classic buckets whose le labels parse back to the
    same bounds."""
    from ig_metrics.exporters.registry import create_exporter
    from tests.receivers import OtlpGrpcReceiver, flatten, otlp_config, prometheus_config, scrape

    spec, snapshot = probe_snapshot
    (point,) = points(snapshot, "probe.value", process__pid=os.getpid())
    bounds = snapshot.metric("probe.value").info.bounds
    with OtlpGrpcReceiver() as receiver:
        otlp = create_exporter(otlp_config("to-collector", "otlp-grpc", receiver.endpoint,
                                           insecure=True))
        otlp.start()
        try:
            assert otlp.export(snapshot, 10).value == "success"
        finally:
            otlp.shutdown(5)
        seen = flatten(receiver.received)[("probe.value",
                                          frozenset({("process.pid", os.getpid())}))]
    assert seen.bounds == bounds
    assert seen.counts == point.value.counts
    assert seen.count == len(BOUNDARY_VALUES)

    prometheus = create_exporter(prometheus_config("scraped"))
    prometheus.start()
    try:
        prometheus.export(snapshot, 5)
        text, _ = scrape(f"http://127.0.0.1:{prometheus.bound_port}/metrics")
    finally:
        prometheus.shutdown(5)
    buckets = {}
    for line in text.splitlines():
        if line.startswith("probe_value_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    assert [float(le) for le in buckets if le != "+Inf"] == list(bounds)
    cumulative = [sum(point.value.counts[:index + 1]) for index in range(len(bounds))]
    assert [value for le, value in buckets.items() if le != "+Inf"] == cumulative
    assert buckets["+Inf"] == len(BOUNDARY_VALUES)
