"""A run on this host, as `ig-metrics run` makes it: the options the command
line gathered and checked (RunOptions), the agent started behind its health
endpoint, ticking under the live table or the summary lines, until stopped."""

from __future__ import annotations

import gc
import logging
import threading

from rich.console import Console

from ig_metrics.app.agent import Agent, RunError
from ig_metrics.app.runoptions import RunOptions
from ig_metrics.app.summaryservice import SummaryService
from ig_metrics.bpf.memory import fix_malloc_thresholds
from ig_metrics.model.snapshot import Snapshot
from ig_metrics.pipeline.probes import HealthServer
from ig_metrics.summary.node import SUMMARY_PATH
from ig_metrics.ui.keys import KeyReader
from ig_metrics.ui.live import LiveView
from ig_metrics.ui.status import summary_line

UI_TICK_INTERVAL = 1.0        # the live table shows rates over one-second reads
UI_REFRESH_INTERVAL = 0.5     # and looks twice a second for an exporter change to show
log = logging.getLogger("ig_metrics.run")


def run_here(options: RunOptions, stop: threading.Event, console: Console) -> None:
    """Run until `stop` is set or the duration is over, then detach and make
    a final export. RunError (its message for the user) when it cannot start;
    nothing stays attached then."""
    # The process' malloc policy, as gc.freeze below is its collector's: set
    # before the compiler's allocations, so that they too are mapped apart.
    fix_malloc_thresholds()
    # Console exporters print through the live view's console (above the
    # table); without the view, on stdout, the log being on stderr: a pipe
    # (`| jq`) gets the exports alone.
    agent = Agent(options.specs, options.profile, idle_expiry=options.idle_expiry,
                  console=console if options.use_tui else None,
                  process_filter=options.process_filter)
    health = None
    if options.health_address is not None:
        # Before the gadgets compile: /readyz says "not yet" rather than nothing.
        try:
            health = HealthServer(options.health_address, agent.health,
                                  {SUMMARY_PATH: SummaryService(agent).answer})
        except OSError as error:
            raise RunError(f"--health-listen {options.health_address}: "
                           f"{error.strerror or error}") from error
        health.start()
    try:
        agent.start()
        # What start-up made (modules, bcc's tables, the SDK, the exporters) lives
        # as long as this process. Frozen, Python's full collections no longer walk
        # it: each tick's snapshot outlives a tick, so one comes every few ticks,
        # and at ~60k start-up objects it cost ~35 ms (docs/performance.md). The
        # process' policy, so here and not in the Agent the tests also run.
        gc.collect()
        gc.freeze()
        try:
            _tick_until_stopped(agent, options, stop, console)
        finally:
            final = agent.stop()
            if final is not None:
                log.info("stopped: programs detached; final reading of %d points "
                         "handed to the exporters", final.point_count)
    finally:
        if health is not None:
            health.close()


def _tick_until_stopped(agent: Agent, options: RunOptions, stop: threading.Event,
                        console: Console) -> None:
    """Ticks, with the live table or the summary lines, until stopped."""
    if options.use_tui:
        title = f"ig-metrics · {agent.name} · profile {options.profile.name}"
        if options.process_filter.active:
            title += f" · {options.process_filter.describe()}"
        view = LiveView(list(options.specs), top=options.top, sorts=list(options.sorts),
                        title=title, console=console, on_quit=stop.set)
        with view, KeyReader(view.on_key) as keys:
            view.keys = keys.active
            agent.run(stop, duration=options.duration,
                      tick_interval=min(UI_TICK_INTERVAL, agent.tick_interval),
                      refresh=lambda: view.update(agent.latest(), agent.statuses()),
                      refresh_interval=UI_REFRESH_INTERVAL)
        return
    last: list[Snapshot] = []

    def log_summary(snapshot: Snapshot) -> None:
        # One line per gadget per interval, the exporters' states on the last.
        for index, spec in enumerate(options.specs):
            statuses = agent.statuses() if index == len(options.specs) - 1 else []
            log.info(summary_line(spec, last[0] if last else None, snapshot, statuses))
        last[:] = [snapshot]

    agent.run(stop, duration=options.duration, tick_interval=agent.tick_interval,
              on_tick=log_summary)
