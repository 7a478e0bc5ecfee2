"""ig-metrics: kernel metrics from eBPF gadgets, streamed to Prometheus and OTLP."""

__version__ = "0.1.0"
