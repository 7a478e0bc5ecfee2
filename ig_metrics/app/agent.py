"""One run of one or more gadgets with a profile, in one process: start
attributing cgroups to containers and pods, compile and verify every gadget,
start the exporters, attach, tick the samplers, and stop cleanly. Every
exporter gets every gadget's metrics, merged into one snapshot per tick.
Anything that fails before the gadgets are attached leaves nothing behind (a
gadget that does not compile fails the whole start); once running, a gadget
whose read fails is reported while the others go on. Stopping detaches first,
then takes a final reading and gives every exporter a bounded final export."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ig_metrics import __version__
from ig_metrics.bpf.filters import ProcessFilter
from ig_metrics.bpf.loader import GadgetLoadError, GadgetProgram
from ig_metrics.bpf.maps import MapReadError
from ig_metrics.bpf.memory import BurstTrim, release_compiler_memory
from ig_metrics.config.model import DEFAULT_IDLE_EXPIRY, DEFAULT_SAMPLER_MAX_SERIES, Profile
from ig_metrics.exporters.base import Exporter, ExporterStartError, ExporterStatus
from ig_metrics.exporters.delivery.telemetry import ExportTelemetry
from ig_metrics.exporters.delivery.worker import ExporterWorker
from ig_metrics.exporters.registry import create_exporter
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.k8s.attribution import Attribution, start_attribution
from ig_metrics.k8s.cgroupwrites import (
    writable_cgroup_mounts,
    writable_cgroups_warning,
    writable_mounts_metric,
)
from ig_metrics.model.snapshot import Attributes, MetricData, Snapshot
from ig_metrics.pipeline.probes import AgentHealth
from ig_metrics.pipeline.sampler import DEFAULT_LINGER, Sampler
from ig_metrics.pipeline.selfmetrics import KernelSelfMetrics, gadget_read_metrics, merge_metrics
from ig_metrics.pipeline.sources import SourceLayoutError

log = logging.getLogger("ig_metrics.agent")

DEFAULT_STOP_TIMEOUT = 5.0


class RunError(Exception):
    """A run that cannot start; the message is for the user (exit code 1)."""


def attribution_for(specs: Sequence[GadgetSpec], profile: Profile) -> Attribution | None:
    """What the gadgets' cgroup and peer decoders ask, started (the pod cache
    lists pods in the background); None when no gadget has either."""
    decoders = {attribute.decoder for spec in specs for attribute in spec.active_attributes}
    if not decoders & {"cgroup", "peer_pod"}:
        log.debug("attribution: none: no gadget of %s keys series by cgroup",
                  gadget_names(specs))
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


def gadget_names(specs: Sequence[GadgetSpec]) -> str:
    """How a run's gadgets are named in its resource and its messages: 'tcp,dns'."""
    return ",".join(spec.name for spec in specs)


def resource_for(specs: Sequence[GadgetSpec], environ=os.environ) -> Attributes:
    """Who is reporting: on Kubernetes the DaemonSet sets NODE_NAME from the
    downward API, and it names the node the metrics come from. The gadgets,
    comma-separated, as ig_metrics.gadget."""
    resource = [("service.name", "ig-metrics"), ("service.version", __version__),
                ("host.name", socket.gethostname()), ("ig_metrics.gadget", gadget_names(specs))]
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


@dataclass
class GadgetRun:
    """One gadget of a run: its programs in the kernel and the sampler reading them."""

    spec: GadgetSpec
    program: GadgetProgram
    sampler: Sampler
    kernel: KernelSelfMetrics
    last: Snapshot | None = None      # its last good reading
    failure: str = ""                 # why its last read failed; "" when it read
    read_failures: int = 0


class Agent:
    def __init__(self, specs: Sequence[GadgetSpec], profile: Profile, *,
                 idle_expiry: float = DEFAULT_IDLE_EXPIRY, console=None,
                 process_filter: ProcessFilter | None = None) -> None:
        self.specs = tuple(specs)
        self.name = gadget_names(self.specs)
        self.process_filter = process_filter
        self.profile = profile
        self.idle_expiry = idle_expiry
        self.console = console
        self.gadgets: list[GadgetRun] = []
        self.exporters: list[Exporter] = []
        self.workers: list[ExporterWorker] = []
        self.attribution: Attribution | None = None
        self._latest: Snapshot | None = None
        self._previous: Snapshot | None = None    # the reading before: for rates
        self._latest_lock = threading.Lock()
        self.started_ns = 0
        self.telemetry = ExportTelemetry()
        self._resource = resource_for(self.specs)
        self._seq = 0
        self._tick_interval = 0.0        # what run() ticks at, for the load governors
        self._readings = 0               # for the health endpoint (pipeline/probes.py)
        self._last_reading: float | None = None
        self._last_tick_seconds = 0.0
        self._stopped = False
        self.writable_cgroups: list[str] = []     # cgroup hierarchies this pod may write
        # Two of the longest interval: each exporter has exported, and let go of,
        # the snapshots that still held the expired series.
        self._burst_trim = BurstTrim(2 * max((config.interval for config in profile.exporters),
                                             default=10.0))

    @property
    def attached(self) -> bool:
        return bool(self.gadgets)

    # --- start ------------------------------------------------------------------
    def start(self) -> None:
        """Compile and verify every gadget, start exporters, attach, start
        workers. On any failure everything already done is undone and RunError
        is raised, naming the gadget."""
        timings = _StartTimings()
        self.writable_cgroups = writable_cgroup_mounts()
        if self.writable_cgroups:
            log.warning("%s", writable_cgroups_warning(self.writable_cgroups))
        self.exporters = [create_exporter(config, console=self.console)
                          for config in self.profile.exporters]
        # First: the pod cache's first list runs while the gadgets compile.
        self.attribution = attribution_for(self.specs, self.profile)
        timings.mark("set-up")
        programs = [GadgetProgram(spec, process_filter=self._filter_for(spec))
                    for spec in self.specs]
        try:
            _load_all(programs)
        except GadgetLoadError as error:
            self._stop_attribution()
            raise RunError(str(error)) from error
        # Loading LLVM touched far more of it than compiling needs: given back
        # before the exporters start, the peak of memory (VmHWM) is lower.
        release_compiler_memory()
        timings.mark("compile and load")
        started: list[Exporter] = []
        try:
            for exporter in self.exporters:
                exporter.start()
                started.append(exporter)
            timings.mark("exporters")
            if self.attribution is not None:
                # Recording new cgroups starts with the gadgets, not earlier.
                self.attribution.attach()
            for program in programs:
                program.attach()
            timings.mark("attach")
            self.started_ns = time.time_ns()
            self.telemetry = ExportTelemetry(self.started_ns)
            for exporter in self.exporters:
                self.telemetry.add(exporter.stats)
            gadgets = [self._gadget_run(program) for program in programs]
        except (ExporterStartError, GadgetLoadError, SourceLayoutError) as error:
            for exporter in started:
                exporter.shutdown(1.0)
            for program in programs:
                program.close()
            self._stop_attribution()
            raise RunError(str(error)) from error
        self.gadgets = gadgets
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
        log.info("%s %s attached; exporting to %s (start-up: %s)",
                 "gadget" if len(self.specs) == 1 else "gadgets", self.name,
                 ", ".join(f"{e.name} ({e.target})" for e in self.exporters), timings)
        for gadget in self.gadgets:
            log.info("gadget %s on Linux %s counts through: %s", gadget.spec.name,
                     gadget.program.plan.release, gadget.program.plan.describe(
                         tuple(metric.name for metric in gadget.spec.metrics)))

    def _filter_for(self, spec: GadgetSpec) -> ProcessFilter | None:
        """--pid, --comm and --cgroup apply to every gadget that can filter."""
        if spec.no_process_filter and self.process_filter is not None \
                and self.process_filter.active and len(self.specs) > 1:
            log.warning("gadget %s: --pid, --comm and --cgroup do not apply to it (%s): it "
                        "counts every process", spec.name, spec.no_process_filter)
            return None
        return self.process_filter

    def _gadget_run(self, program: GadgetProgram) -> GadgetRun:
        spec = program.spec
        return GadgetRun(spec, program, Sampler(
            spec, program, resource=self._resource,
            idle_expiry=idle_expiry_for(self.profile, self.idle_expiry),
            max_series=self.profile.sampler_max_series or DEFAULT_SAMPLER_MAX_SERIES,
            attribution=self.attribution, selection=self.profile.attributes,
            linger=linger_for(self.profile)), KernelSelfMetrics(spec, program, self.started_ns))

    def _sampler_share(self) -> float:
        """The share of its interval the samplers' last reading took."""
        if not self._tick_interval:
            return 0.0
        return self._last_tick_seconds / self._tick_interval

    def _series_count(self, gadget: GadgetRun) -> int:
        return gadget.last.point_count if gadget.last else 0

    # --- running ----------------------------------------------------------------
    def tick(self, final: bool = False) -> Snapshot:
        """One reading of every gadget, merged into one snapshot with the
        self-metrics. A gadget whose read fails keeps its last reading in the
        snapshot, and is reported (log, health, ig_metrics.gadget.read.failures)."""
        started = time.perf_counter()
        now = time.time_ns()
        metrics: list[MetricData] = []
        for gadget in self.gadgets:
            try:
                gadget.last = gadget.sampler.tick(final=final)
            except MapReadError as error:
                gadget.read_failures += 1
                if not gadget.failure:
                    log.error("gadget %s: reading failed: %s (the other gadgets go on)",
                              gadget.spec.name, error.strerror)
                gadget.failure = error.strerror or str(error)
            else:
                if gadget.failure:
                    log.info("gadget %s: reading again", gadget.spec.name)
                gadget.failure = ""
            if gadget.last is not None:
                metrics.extend(gadget.last.metrics)
        self._last_tick_seconds = time.perf_counter() - started
        metrics.extend(self._self_metrics(now))
        self._seq += 1
        snapshot = Snapshot(self._seq, now, self.name, self._resource, tuple(metrics), final)
        with self._latest_lock:
            self._previous, self._latest = self._latest, snapshot
            if not final:
                self._readings += 1
                self._last_reading = time.monotonic()
        self._burst_trim.after_tick(snapshot.point_count, time.monotonic())
        return snapshot

    def _self_metrics(self, now: int) -> list[MetricData]:
        """Each gadget's kernel-side self-metrics, told apart by ig_metrics.gadget,
        its reads, and the exporters' telemetry."""
        per_gadget = [gadget.kernel.metrics(
            now, gadget.sampler.last_tick_seconds, self._series_count(gadget),
            interval=self._tick_interval, map_fill=gadget.sampler.map_fill())
            for gadget in self.gadgets]
        reads = gadget_read_metrics(
            [(gadget.spec.name, gadget.read_failures) for gadget in self.gadgets],
            self.started_ns)
        merged = merge_metrics([(gadget.spec.name, metrics)
                                for gadget, metrics in zip(self.gadgets, per_gadget)])
        return [*merged, *reads, *self.telemetry.metrics(now),
                writable_mounts_metric(self.writable_cgroups, now)]

    def latest(self) -> Snapshot | None:
        with self._latest_lock:
            return self._latest

    def last_two(self) -> tuple[Snapshot | None, Snapshot | None]:
        """(the reading before the last, the last), for rates between them."""
        with self._latest_lock:
            return self._previous, self._latest

    @property
    def last_tick_seconds(self) -> float:
        return self._last_tick_seconds

    def failures(self) -> dict[str, str]:
        """gadget -> why its last read failed, for those whose read failed."""
        return {gadget.spec.name: gadget.failure for gadget in self.gadgets if gadget.failure}

    def statuses(self) -> list[ExporterStatus]:
        return [worker.status() for worker in self.workers]

    def health(self) -> AgentHealth:
        """What /readyz, /livez and /healthz answer from (any thread)."""
        phase = ("stopped" if self._stopped else
                 "attached" if self.gadgets else "starting")
        with self._latest_lock:
            readings, last = self._readings, self._last_reading
        return AgentHealth(self.name, phase, readings, last,
                           self._tick_interval or self.tick_interval, tuple(self.statuses()),
                           tuple((gadget.spec.name, gadget.failure) for gadget in self.gadgets))

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
                # next one out: the samplers never take all of the process' time.
                next_tick = now + max(tick_interval, 2 * self._last_tick_seconds)
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
        if self.gadgets:
            for gadget in self.gadgets:
                gadget.program.detach()
            final = self.tick(final=True)
        deadline = time.monotonic() + timeout
        stoppers = [threading.Thread(target=worker.stop, args=(final, timeout),
                                     name=f"stop-{worker.name}", daemon=True)
                    for worker in self.workers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(max(0.0, deadline - time.monotonic()))
        for gadget in self.gadgets:
            gadget.program.close()
        self.gadgets = []
        self._stop_attribution()
        return final

    def _stop_attribution(self) -> None:
        if self.attribution is not None:
            self.attribution.close()
            self.attribution = None


# One gadget after the other: bcc 0.26 crashes when two threads compile at once
# (its kernel-symbol table is one global that each compile builds and frees;
# benchmarks/several_gadgets.py --compile-threads, docs/performance.md).
def _load_all(programs: Sequence[GadgetProgram]) -> None:
    """Compile and load every gadget; on a failure close those loaded and raise."""
    loaded: list[GadgetProgram] = []
    try:
        for program in programs:
            program.load()
            loaded.append(program)
    except GadgetLoadError:
        for program in loaded:
            program.close()
        raise
