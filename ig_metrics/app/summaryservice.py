"""The agent's /summary (on --health-listen): the node summary the cluster CLI
reads through the pod proxy, built from the agent's last two readings. Built
once per reading, sort column and row count, whatever the number of CLIs
asking (each refresh of each CLI asks once)."""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import parse_qs

from ig_metrics import __version__
from ig_metrics.app.agent import Agent
from ig_metrics.exporters.base import ExporterStatus, Health
from ig_metrics.summary.node import (
    MAX_TOP,
    AgentCost,
    ExporterLine,
    NodeSummary,
    encode,
    summarize,
)
from ig_metrics.summary.rows import DEFAULT_TOP, RecentWindow, UnknownSortColumn

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class SummaryService:
    """Answers GET /summary?sort=COLUMN&top=N for one agent (any thread)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._lock = threading.Lock()
        self._kept: dict[str, dict] = {}
        self._window = RecentWindow()
        self._cache: tuple[tuple[int, str | None, int], bytes] | None = None

    def answer(self, query: str) -> tuple[int, bytes, str]:
        """(HTTP status, body, content type) for the query string of a request."""
        fields = parse_qs(query)
        sort = fields.get("sort", [""])[0] or None
        try:
            top = int(fields.get("top", [str(DEFAULT_TOP)])[0])
        except ValueError:
            return 400, b"top: not a number\n", TEXT
        if not 1 <= top <= MAX_TOP:
            return 400, f"top: from 1 to {MAX_TOP}\n".encode(), TEXT
        previous, current = self.agent.last_two()
        if current is None:
            return 503, b"no reading yet: the gadgets are compiling or attaching\n", TEXT
        key = (current.seq, sort, top)
        with self._lock:
            if self._cache is not None and self._cache[0] == key:
                return 200, self._cache[1], JSON
            try:
                gadgets = summarize(self.agent.specs, previous, current, sort=sort, top=top,
                                    kept=self._kept, failures=self.agent.failures(),
                                    window=self._window.base(current))
            except UnknownSortColumn as error:
                return 400, f"{error}\n".encode(), TEXT
            elapsed = (current.time_ns - previous.time_ns) / 1e9 if previous else 0.0
            summary = NodeSummary(__version__, current.time_ns, elapsed,
                                  self.agent.tick_interval, gadgets,
                                  tuple(exporter_line(status)
                                        for status in self.agent.statuses()),
                                  AgentCost(time.process_time(), _rss_bytes(),
                                            self.agent.last_tick_seconds))
            body = encode(summary)
            self._cache = (key, body)
        return 200, body, JSON


def exporter_line(status: ExporterStatus) -> ExporterLine:
    detail = status.last_error if status.health is Health.FAILING else ""
    return ExporterLine(status.name, status.type, status.health.value, status.interval, detail)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE
