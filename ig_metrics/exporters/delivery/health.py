"""The health state machine of one supervised exporter:
starting -> healthy <-> degraded -> failing -> recovering -> healthy."""

from __future__ import annotations

from ig_metrics.exporters.base import ExportFailure, Health

FAILING_AFTER = 3      # consecutive failed attempts before degraded becomes failing


class HealthTracker:
    """Turns the outcome of each attempt into a Health.

    - a success: healthy, or degraded while something is still wrong (a backlog
      being sent, points dropped, an interval widened by load); after failing,
      recovering until a success leaves no backlog;
    - a retryable failure, or a batch refused for its data (dropped; the next
      batch may well be taken): degraded, failing from the FAILING_AFTER-th in
      a row (at once when it follows a recovery);
    - any other permanent failure (the collector refused the sender:
      credentials, URL; retrying cannot help): failing.
    """

    def __init__(self) -> None:
        self.health = Health.STARTING
        self.consecutive_failures = 0

    def succeeded(self, *, troubled: bool, backlog: bool) -> Health:
        self.consecutive_failures = 0
        if self.health is Health.FAILING or (self.health is Health.RECOVERING and backlog):
            self.health = Health.RECOVERING
        else:
            self.health = Health.DEGRADED if troubled or backlog else Health.HEALTHY
        return self.health

    def failed(self, failure: ExportFailure) -> Health:
        self.consecutive_failures += 1
        refused_for_good = not failure.retryable and not failure.batch_refused
        if (refused_for_good or self.consecutive_failures >= FAILING_AFTER
                or self.health is Health.RECOVERING):
            self.health = Health.FAILING
        elif self.health is not Health.FAILING:
            self.health = Health.DEGRADED
        return self.health
