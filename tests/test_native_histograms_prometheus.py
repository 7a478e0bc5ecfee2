"""Native histograms seen by the real Prometheus 2.42: values placed by a real
BPF program (the histprobe test gadget: getpgid() arguments, as microseconds)
are scraped by a Prometheus started with --enable-feature=native-histograms
(it asks for the protobuf exposition) and by a classic one beside it, from
the same endpoint. PromQL's histogram functions over the native series give
the values the definition of the buckets says; the classic server still gets
its _bucket series."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import pytest

from tests import histprobe
from tests.receivers import PrometheusServer, exporter_config, prometheus_config
from tests.snapshots import points

pytestmark = pytest.mark.bpf

# Microseconds. Each lies wholly inside one native bucket of seconds, so the
# truth (bucket i holds (2^(i-1), 2^i] s) is known from the values alone:
# 0 twice (zero bucket), 4..7 us in (2^-18, 2^-17] s, 1024 and 1500 us in
# (2^-10, 2^-9] s.
VALUES = [0, 0, 4, 5, 6, 7, 1024, 1500]


def true_bucket(us: int) -> int:
    value = Fraction(us, 10**6)
    index = math.ceil(math.log2(value))
    assert Fraction(2) ** (index - 1) < value <= Fraction(2) ** index
    return index


@pytest.fixture(scope="module")
def probe_snapshot(bpf_available):
    return histprobe.record(VALUES, (("service.name", "histprobe"),))[1]


def test_native_and_classic_prometheus_scrape_the_same_endpoint(probe_snapshot, tmp_path):
    """Also a second endpoint with histograms: classic, which the native server
    then stores as classic buckets from the protobuf exposition."""
    from ig_metrics.exporters.prometheus.exporter import PrometheusSettings
    from ig_metrics.exporters.registry import create_exporter

    (point,) = points(probe_snapshot, "probe.value", process__pid=os.getpid())
    assert point.value.count == len(VALUES)
    exporter = create_exporter(prometheus_config("scraped"))
    classic_only = create_exporter(exporter_config(
        "classic-only", "prometheus", PrometheusSettings("127.0.0.1", 0, histograms="classic")))
    exporter.start()
    classic_only.start()
    try:
        exporter.export(probe_snapshot, 5)
        classic_only.export(probe_snapshot, 5)
        target = [f"127.0.0.1:{exporter.bound_port}"]
        classic_target = f"127.0.0.1:{classic_only.bound_port}"
        series = f'probe_value_seconds{{process_pid="{os.getpid()}"}}'
        with PrometheusServer([*target, classic_target], tmp_path / "native",
                              flags=("--enable-feature=native-histograms",)) as native, \
                PrometheusServer(target, tmp_path / "classic") as classic:
            count = native.wait_for(f"histogram_count({series})")
            total = native.query(f"histogram_sum({series})")
            quantiles = {q: native.query(f"histogram_quantile({q}, {series})")
                         for q in (0.75, 0.875, 1.0)}
            buckets = classic.wait_for(f'count(probe_value_seconds_bucket{{process_pid='
                                       f'"{os.getpid()}"}})')
            infinity = classic.query(f'probe_value_seconds_bucket{{le="+Inf",process_pid='
                                     f'"{os.getpid()}"}}')
            native_has_no_buckets = native.query(
                f'probe_value_seconds_bucket{{instance="{target[0]}"}}')
            classic_in_protobuf = native.wait_for(
                f'probe_value_seconds_bucket{{le="+Inf",instance="{classic_target}"}}')
    finally:
        exporter.shutdown(5)
        classic_only.shutdown(5)

    assert float(count[0]["value"][1]) == len(VALUES)
    assert float(total[0]["value"][1]) == point.value.sum == sum(VALUES) / 1e6
    # Cumulative counts by the definition: 2 zeros, then 4 in bucket -17, 2 in -9.
    assert [true_bucket(us) for us in VALUES if us] == [-17] * 4 + [-9] * 2
    # q=0.75: rank 6 ends bucket -17 -> its upper bound, 2^-17. q=0.875: rank 7 is
    # half way into bucket -9 (linear in 2.42): 2^-10 + 2^-11. q=1: 2^-9.
    assert float(quantiles[0.75][0]["value"][1]) == 2.0 ** -17
    assert float(quantiles[0.875][0]["value"][1]) == 2.0 ** -10 + 2.0 ** -11
    assert float(quantiles[1.0][0]["value"][1]) == 2.0 ** -9
    # The classic server: one _bucket series per bound and +Inf, all counted.
    assert float(buckets[0]["value"][1]) == len(probe_snapshot.metric("probe.value")
                                                .info.bounds) + 1
    assert float(infinity[0]["value"][1]) == len(VALUES)
    assert native_has_no_buckets == []
    assert float(classic_in_protobuf[0]["value"][1]) == len(VALUES)
