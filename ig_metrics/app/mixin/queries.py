"""The PromQL the dashboards and rules are made of, from metric specs: each
metric's Prometheus name (as exporters/prometheus/naming.py translates it), the label
filters of the dashboards' variables, and the rate, quantile and heatmap
expressions for counters and histograms (classic `_bucket` and native)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ig_metrics.exporters.encoding.log2native import is_log2
from ig_metrics.exporters.prometheus.naming import label_name, prometheus_metric_name
from ig_metrics.gadgets.spec import MetricSpec
from ig_metrics.model.snapshot import HISTOGRAM, MetricInfo

# Which scrape jobs are ig-metrics: `ig-metrics` as a static job, or
# `NAMESPACE/ig-metrics-GADGET` from the PodMonitor deploy writes.
JOB_MATCHER = 'job=~".*ig-metrics.*"'
# The resource attributes of every run, one `target_info` series per agent.
TARGET_INFO = "target_info"
SERVICE_MATCHER = 'service_name="ig-metrics"'
GADGET_LABEL = label_name("ig_metrics.gadget")
# The dashboards' variables, as label matchers. The attribute variables' "All"
# is ".*", which also matches a series without the label; job's and node's is
# Grafana's own (every value listed), which keeps other gadgets' agents out.
JOB = 'job=~"$job"'
NODE = 'instance=~"$node"'
# A dashboard variable -> the attribute it filters on.
ATTRIBUTE_VARIABLES = {"namespace": "k8s.namespace.name", "pod": "k8s.pod.name",
                       "command": "process.command"}
RATE_WINDOW = "$__rate_interval"
RECORDED_WINDOW = "5m"          # what the recording rules rate over
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric as the mixin sees it: its Prometheus name and what it is."""

    name: str                   # the OTel name
    kind: str
    unit: str
    description: str
    labels: tuple[str, ...]     # the Prometheus labels its points may carry
    # A histogram of log2 slots: a native histogram where Prometheus scrapes them
    # (exporters/encoding/log2native.py); other histograms stay classic everywhere.
    native: bool = False

    @property
    def prometheus(self) -> str:
        return prometheus_metric_name(self.name, self.unit, self.kind)

    @property
    def bucket(self) -> str:
        return f"{self.prometheus}_bucket"

    @property
    def series_names(self) -> tuple[str, ...]:
        """The names of the series a scrape of it shows."""
        if self.kind == HISTOGRAM:
            return tuple(f"{self.prometheus}{suffix}" for suffix in ("", "_bucket", "_sum",
                                                                      "_count"))
        return (self.prometheus,)

    @property
    def stem(self) -> str:
        """The name without `_total`, for recording rules' names."""
        return self.prometheus.removesuffix("_total")


def metric_of(info: MetricInfo | MetricSpec, attributes: Iterable[str]) -> Metric:
    """The mixin's view of a self-metric's MetricInfo or a gadget's MetricSpec."""
    return Metric(info.name, info.kind, info.unit, info.description,
                  tuple(label_name(name) for name in attributes if not name.endswith("*")),
                  native=info.kind == HISTOGRAM and is_log2(info.bounds))


def matchers(*parts: str) -> str:
    return "{" + ", ".join(part for part in parts if part) + "}"


def variable_matchers(metric: Metric, variables: tuple[str, ...]) -> tuple[str, ...]:
    """The matchers of the attribute variables that apply to `metric`."""
    return tuple(f'{label_name(ATTRIBUTE_VARIABLES[variable])}=~"${variable}"'
                 for variable in variables
                 if label_name(ATTRIBUTE_VARIABLES[variable]) in metric.labels)


def by(labels: tuple[str, ...]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


def rate(metric: Metric, selector: str, group: tuple[str, ...], window: str = RATE_WINDOW) -> str:
    return f"sum{by(group)} (rate({metric.prometheus}{selector}[{window}]))"


def classic_quantile(metric: Metric, quantile: float, selector: str,
                     group: tuple[str, ...] = (), window: str = RATE_WINDOW) -> str:
    return (f"histogram_quantile({quantile}, sum{by((*group, 'le'))} "
            f"(rate({metric.bucket}{selector}[{window}])))")


def native_quantile(metric: Metric, quantile: float, selector: str,
                    group: tuple[str, ...] = (), window: str = RATE_WINDOW) -> str:
    """A native histogram's quantile: the plain name holds the whole histogram
    (Prometheus >= 2.40 with --enable-feature=native-histograms)."""
    return (f"histogram_quantile({quantile}, sum{by(group)} "
            f"(rate({metric.prometheus}{selector}[{window}])))")


def classic_heatmap(metric: Metric, selector: str) -> str:
    return f"sum by (le) (increase({metric.bucket}{selector}[{RATE_WINDOW}]))"


def native_heatmap(metric: Metric, selector: str) -> str:
    return f"sum(increase({metric.prometheus}{selector}[{RATE_WINDOW}]))"


def recorded_rate_name(metric: Metric) -> str:
    """level:metric:operations, as Prometheus' naming practice for rules says."""
    return f"instance:{metric.stem}:rate{RECORDED_WINDOW}"


def recorded_bucket_rate_name(metric: Metric) -> str:
    return f"instance_le:{metric.bucket}:rate{RECORDED_WINDOW}"

