"""One run of a gadget with a profile: start attributing cgroups to containers
and pods, compile and verify the gadget, start the exporters, attach, tick the
sampler, and stop cleanly. Anything that fails before the gadget is attached
leaves nothing behind; stopping detaches first, then takes a final reading and
gives every exporter a bounded final export."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from ig_metrics import __version__
from ig_metrics.bpf.filters import ProcessFilter
from ig_metrics.bpf.loader import GadgetLoadError, GadgetProgram
from ig_metrics.bpf.maps import MapReadError
from ig_metrics.bpf.memory import BurstTrim, release_compiler_memory
from ig_metrics.config.model import DEFAULT_SAMPLER_MAX_SERIES, Profile
from ig_metrics.exporters.registry import create_exporter
from ig_metrics.exporters.base import Exporter, ExporterStartError, ExporterStatus
from ig_metrics.exporters.telemetry import ExportTelemetry
from ig_metrics.exporters.worker import ExporterWorker
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.k8s.attribution import Attribution, start_attribution
from ig_metrics.pipeline.sampler import DEFAULT_IDLE_EXPIRY, DEFAULT_LINGER, Sampler
from ig_metrics.pipeline.probes import AgentHealth
from ig_metrics.pipeline.selfmetrics import KernelSelfMetrics
from ig_metrics.model.snapshot import Attributes, Snapshot
from ig_metrics.pipeline.sources import SourceLayoutError

log = logging.getLogger("ig_metrics.agent")

DEFAULT_STOP_TIMEOUT = 5.0


class RunError(Exception):
    """A run that cannot start; the message is for the user (exit code 1)."""


def attribution_for(spec: GadgetSpec, profile: Profile) -> Attribution | None:
    """What the gadget's cgroup and peer decoders ask, started (the pod cache
    lists pods in the background); None for a gadget that has neither."""
    decoders = {attribute.decoder for attribute in spec.active_attributes}
    if not decoders & {"cgroup", "peer_pod"}:
        log.debug("attribution: none: gadget %s keys no series by cgroup%s", spec.name,
                 f" ({spec.no_process_filter})" if spec.no_process_filter else "")
        return None
    # The cluster-wide watch of pod IPs only serves peer addresses; the
    # recorder of new cgroups only cgroup ids.
    return start_attribution(pod_labels=profile.attributes.pod_labels,
                             peers="cluster" if "peer_pod" in decoders else "off",
                             record_new_cgroups="cgroup" in decoders)


def linger_for(profile: Profile) -> float:
    """How long a series that ended because its attributes changed (a pod's
    names arrived) is still exported with its final value: long enough for the
    slowest exporter, at the widest its load may make its interval, and for a
    Prometheus server that scrapes every minute or so."""
    slowest = max((config.max_interval for config in profile.exporters), default=0.0)
    return max(DEFAULT_LINGER, 2 * slowest)


def idle_expiry_for(profile: Profile, asked: float) -> float:
    """The idle expiry a run uses: at least two of its slowest exporter's
    intervals, so that every exporter sees a series' last counts before it
    goes (0: never expire)."""
    slowest = max((config.interval for config in profile.exporters), default=0.0)
    if not asked or asked >= 2 * slowest:
        return asked
    log.warning("idle expiry raised from %gs to %gs: twice the slowest exporter's interval, "
                "so that it exports every series' last counts", asked, 2 * slowest)
    return 2 * slowest


def resource_for(spec: GadgetSpec, environ=os.environ) -> Attributes:
    """Who is reporting: on Kubernetes the DaemonSet sets NODE_NAME from the
    downward API, and it names the node the metrics come from."""
    resource = [("service.name", "ig-metrics"), ("service.version", __version__),
                ("host.name", socket.gethostname()), ("ig_metrics.gadget", spec.name)]
    if environ.get("NODE_NAME"):
        resource.append(("k8s.node.name", environ["NODE_NAME"]))
    return tuple(resource)


class _StartTimings:
    """How long each step of start() took, for the log line that says the
    gadget is attached (benchmarks/startup.py reads it)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._steps: list[tuple[str, float]] = []

    def mark(self, step: str) -> None:
        now = time.monotonic()
        self._steps.append((step, now - self._last))
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds:.2f}s" for step, seconds in self._steps)


class Agent:
    def __init__(self, spec: GadgetSpec, profile: Profile, *,
                 idle_expiry: float = DEFAULT_IDLE_EXPIRY, console=None,
                 process_filter: ProcessFilter | None = None) -> None:
        self.spec = spec
        self.process_filter = process_filter
        self.profile = profile
        self.idle_expiry = idle_expiry
        self.console = console
        self.program: GadgetProgram | None = None
        self.sampler: Sampler | None = None
        self.exporters: list[Exporter] = []
        self.workers: list[ExporterWorker] = []
        self.attribution: Attribution | None = None
        self._latest: Snapshot | None = None
        self._latest_lock = threading.Lock()
        self.started_ns = 0
        self.telemetry = ExportTelemetry()
        self._tick_interval = 0.0        # what run() ticks at, for the load governors
        self._readings = 0               # for the health endpoint (pipeline/probes.py)
        self._last_reading: float | None = None
        self._stopped = False
        # Two of the longest interval: each exporter has exported, and let go of,
        # the snapshots that still held the expired series.
        self._burst_trim = BurstTrim(2 * max((config.interval for config in profile.exporters),
                                             default=10.0))

    # --- start ------------------------------------------------------------------
    def start(self) -> None:
        """Compile and verify, start exporters, attach, start workers. On any
        failure everything already done is undone and RunError is raised."""
        timings = _StartTimings()
        self.exporters = [create_exporter(config, console=self.console)
                          for config in self.profile.exporters]
        # First: the pod cache's first list runs while the gadget compiles.
        self.attribution = attribution_for(self.spec, self.profile)
        timings.mark("set-up")
        program = GadgetProgram(self.spec, process_filter=self.process_filter)
        # Loading LLVM touched far more of it than compiling needs: dropped
        # first, the peak of memory (VmHWM) is ~40 MB lower.
        release_compiler_memory()
        try:
            program.load()
        except GadgetLoadError as error:
            self._stop_attribution()
            raise RunError(str(error)) from error
        timings.mark("compile and load")
        started: list[Exporter] = []
        try:
            for exporter in self.exporters:
                exporter.start()
                started.append(exporter)
            timings.mark("exporters")
            if self.attribution is not None:
                # Recording new cgroups starts with the gadget, not earlier.
                self.attribution.attach()
            program.attach()
            timings.mark("attach")
            self.started_ns = time.time_ns()
            kernel = KernelSelfMetrics(self.spec, program, self.started_ns)
            self.telemetry = ExportTelemetry(self.started_ns)
            for exporter in self.exporters:
                self.telemetry.add(exporter.stats)
            self.sampler = Sampler(
                self.spec, program, resource=resource_for(self.spec),
                idle_expiry=idle_expiry_for(self.profile, self.idle_expiry),
                max_series=self.profile.sampler_max_series or DEFAULT_SAMPLER_MAX_SERIES,
                attribution=self.attribution, selection=self.profile.attributes,
                linger=linger_for(self.profile),
                extra_metrics=lambda now: kernel.metrics(
                    now, self.sampler.last_tick_seconds if self.sampler else 0.0,
                    self._series_count(), interval=self._tick_interval,
                    map_fill=self.sampler.map_fill() if self.sampler else None)
                + self.telemetry.metrics(now))
        except (ExporterStartError, GadgetLoadError, SourceLayoutError) as error:
            for exporter in started:
                exporter.shutdown(1.0)
            program.close()
            self._stop_attribution()
            raise RunError(str(error)) from error
        self.program = program
        release_compiler_memory()          # compiling is over for this process
        self.workers = [ExporterWorker(exporter, config.interval, self.latest,
                                       max_interval=config.max_interval,
                                       sampler_share=self._sampler_share)
                        for exporter, config in zip(self.exporters, self.profile.exporters)]
        for config in self.profile.exporters:
            if config.requested_interval and config.interval > config.requested_interval:
                log.warning("exporter %s: interval %gs raised to limits.min_interval %gs",
                            config.name, config.requested_interval, config.interval)
        for worker in self.workers:
            worker.start()
        log.info("gadget %s attached; exporting to %s (start-up: %s)", self.spec.name,
                 ", ".join(f"{e.name} ({e.target})" for e in self.exporters), timings)
        log.info("gadget %s on Linux %s counts through: %s", self.spec.name,
                 program.plan.release,
                 program.plan.describe(tuple(metric.name for metric in self.spec.metrics)))

    def _sampler_share(self) -> float:
        """The share of its interval the sampler's last reading took."""
        if self.sampler is None or not self._tick_interval:
            return 0.0
        return self.sampler.last_tick_seconds / self._tick_interval

    def _series_count(self) -> int:
        latest = self.latest()
        return latest.series_count if latest else 0

    # --- running ----------------------------------------------------------------
    def tick(self) -> Snapshot:
        snapshot = self.sampler.tick()
        with self._latest_lock:
            self._latest = snapshot
            self._readings += 1
            self._last_reading = time.monotonic()
        self._burst_trim.after_tick(snapshot.series_count, self._last_reading)
        return snapshot

    def latest(self) -> Snapshot | None:
        with self._latest_lock:
            return self._latest

    def statuses(self) -> list[ExporterStatus]:
        return [worker.status() for worker in self.workers]

    def health(self) -> AgentHealth:
        """What /readyz, /livez and /healthz answer from (any thread)."""
        phase = ("stopped" if self._stopped else
                 "attached" if self.program is not None else "starting")
        with self._latest_lock:
            readings, last = self._readings, self._last_reading
        return AgentHealth(self.spec.name, phase, readings, last,
                           self._tick_interval or self.tick_interval, tuple(self.statuses()))

    @property
    def tick_interval(self) -> float:
        return min((config.interval for config in self.profile.exporters), default=10.0)

    def run(self, stop: threading.Event, *, duration: float | None, tick_interval: float,
            on_tick: Callable[[Snapshot], None] | None = None,
            refresh: Callable[[], None] | None = None, refresh_interval: float = 0.5) -> None:
        """Tick every `tick_interval` until `stop` is set or `duration` elapses;
        call `refresh` every `refresh_interval` in between (the live table)."""
        deadline = time.monotonic() + duration if duration else None
        next_tick = time.monotonic()
        self._tick_interval = tick_interval
        while not stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now >= next_tick:
                snapshot = self.tick()
                if on_tick:
                    on_tick(snapshot)
                # A reading that takes longer than half its interval spaces the
                # next one out: the sampler never takes all of the process' time.
                next_tick = now + max(tick_interval, 2 * self.sampler.last_tick_seconds)
            if refresh:
                refresh()
            wake = min(next_tick, deadline or next_tick,
                       time.monotonic() + (refresh_interval if refresh else tick_interval))
            stop.wait(max(0.0, wake - time.monotonic()))

    # --- stop -------------------------------------------------------------------
    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> Snapshot | None:
        """Detach, read once more, hand the final snapshot to every exporter
        (all in parallel, bounded by `timeout`), then release the gadget."""
        final = None
        self._stopped = True               # not ready from now on
        if self.program is not None:
            self.program.detach()
            try:
                final = self.sampler.tick(final=True)
            except MapReadError as error:    # the run already says why it stops
                log.error("gadget %s: no final reading: %s", self.spec.name, error.strerror)
            with self._latest_lock:
                self._latest = final
        deadline = time.monotonic() + timeout
        stoppers = [threading.Thread(target=worker.stop, args=(final, timeout),
                                     name=f"stop-{worker.name}", daemon=True)
                    for worker in self.workers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.program is not None:
            self.program.close()
            self.program = None
        self._stop_attribution()
        return final

    def _stop_attribution(self) -> None:
        if self.attribution is not None:
            self.attribution.close()
            self.attribution = None
