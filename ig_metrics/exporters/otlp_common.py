"""What the otlp-grpc and otlp-http exporters share: the newest cumulative
snapshot or a queue of delta intervals (push.py), encoded by otlp_wire.py
with explicit or exponential histograms, sent over a transport of their own."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.metrics.export import AggregationTemporality

from ig_metrics.config.model import DEFAULT_POINTS_PER_EXPORT, OtlpSettings
from ig_metrics.exporters.base import Exporter, ExporterStartError
from ig_metrics.exporters.delta import DeltaTracker
from ig_metrics.exporters.encoding import SHARED, Encoded, encode
from ig_metrics.exporters.otlp_wire import WireEncoder
from ig_metrics.exporters.push import PushExporter
from ig_metrics.model.snapshot import Snapshot

# The default of limits.max_points_per_export. A default collector refuses a
# gRPC message over 4 MiB; a tcp histogram point with 40 bounds and every k8s
# attribute at its longest encodes to about 1.2 KB (tests/test_otel_conversion.py
# measures it), so 1000 points stay near 1.2 MB.
MAX_POINTS_PER_REQUEST = DEFAULT_POINTS_PER_EXPORT


def read_tls_file(exporter: Exporter, setting: str, path: Path | None) -> bytes | None:
    """The bytes of a tls.* file, or ExporterStartError naming the exporter and file."""
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        shown = exporter.shown(f"tls.{setting}", str(path))
        raise ExporterStartError(
            f"exporter {exporter.name}: cannot read tls.{setting} {shown}: "
            f"{error.strerror or error} — fix it in {exporter.where_configured()}") from error


class OtlpExporter(PushExporter[OtlpSettings]):
    """Cumulative: sends the newest accepted snapshot (a failed send loses
    nothing, the next carries the totals). Delta: each accepted snapshot's
    changes become a batch in a bounded queue, sent oldest first."""

    settings_type = OtlpSettings

    def __init__(self, config) -> None:
        self._delta = DeltaTracker() if config.template.settings.temporality == "delta" \
            else None
        super().__init__(config)
        # Encodes this exporter's delta intervals (cumulative snapshots use SHARED's).
        self._encoder = WireEncoder()
        self.exponential = self.settings.histograms == "exponential"

    @property
    def queued(self) -> bool:
        return self._delta is not None

    @property
    def temporality(self) -> AggregationTemporality:
        return (AggregationTemporality.DELTA if self._delta is not None
                else AggregationTemporality.CUMULATIVE)

    def interval(self, limited: Snapshot) -> Snapshot:
        pending = self._delta.prepare(limited)
        # The interval now belongs to the queue: the next delta starts here,
        # whether or not this one is ever delivered.
        self._delta.commit(pending)
        return pending.snapshot

    def encode_interval(self, snapshot: Snapshot) -> Encoded:
        return encode(snapshot, self.temporality, self.settings.limits.max_points_per_export,
                      self._encoder, self.exponential)

    def encode_latest(self, snapshot: Snapshot) -> Encoded:
        return SHARED.get(snapshot, self.temporality, self.settings.limits.max_points_per_export,
                          self.exponential)
