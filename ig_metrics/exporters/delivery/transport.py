"""What a push exporter's transport (OTLP gRPC or HTTP, remote write) gives back
for one request: delivered, partly refused by the receiver, or failed and why."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ig_metrics.exporters.base import ExportFailure


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request's outcome. `failure` None: the collector took it, less
    `rejected_points` that it says it refused (OTLP partial success)."""

    failure: ExportFailure | None = None
    rejected_points: int = 0
    rejected_message: str = ""


class Transport(ABC):
    """Sends encoded ExportMetricsServiceRequests over one long-lived connection."""

    @abstractmethod
    def send(self, request: bytes, timeout: float) -> Delivery:
        """Send one request; never raises for what the network or the collector does."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; a send under way returns early if it can."""
