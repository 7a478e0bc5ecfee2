"""`ig-metrics run`: run a gadget and export its metrics with a profile, showing
a live table on a terminal (or a one-line summary per interval in logs)."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from ig_metrics.bpf.filters import FilterError, ProcessFilter
from ig_metrics.bpf.memory import fix_malloc_thresholds
from ig_metrics.catalog.attributenames import builtin_attribute_names, selection_problems
from ig_metrics.catalog.directories import resolve_profiles_dir
from ig_metrics.cli.cluster import (
    ContextOption,
    KubeconfigOption,
    NamespaceOption,
    cluster_options,
    run_cluster,
)
from ig_metrics.cli.common import ExitCode, ProfilesDirOption, StopOnSignals, fail
from ig_metrics.config import ConfigError, parse_duration
from ig_metrics.config.addresses import HostPort, parse_listen
from ig_metrics.config.durations import format_duration
from ig_metrics.config.model import DEFAULT_IDLE_EXPIRY
from ig_metrics.gadgets import GadgetSpec
from ig_metrics.gadgets.selection import SelectionError, select_gadgets, split_names
from ig_metrics.model.snapshot import Snapshot
from ig_metrics.summary.node import SUMMARY_PATH
from ig_metrics.summary.rows import UnknownSortColumn, sort_columns

UI_TICK_INTERVAL = 1.0        # the live table shows rates over one-second reads
UI_REFRESH_INTERVAL = 0.5     # and looks twice a second for an exporter change to show


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


def run(
    gadget: Annotated[list[str] | None, typer.Option(
        "--gadget", "-g", metavar="NAME|DIR[,...]",
        help="The gadgets to run, in one process: built-in names (see 'ig-metrics gadgets "
             "list') or gadget folders; repeat (-g tcp -g dns) or separate with commas "
             "(-g tcp,dns). Default: the profile's `gadgets:`.", show_default=False)] = None,
    profile: Annotated[str, typer.Option(
        "--profile", "-p", metavar="NAME",
        help="The profile naming the exporters to use (see 'ig-metrics exporters list').")]
    = "local",
    profiles_dir: ProfilesDirOption = None,
    interval: Annotated[str | None, typer.Option(
        "--interval", metavar="DURATION",
        help="Export interval for every exporter of the profile, overriding the "
             "profile, e.g. 5s or 500ms.")] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", metavar="DURATION",
        help="Stop after this long (e.g. 60s, 5m), with a final export.")] = None,
    no_tui: Annotated[bool, typer.Option(
        "--no-tui", help="No live table: log a one-line summary per interval instead "
                         "(the default when stdout is not a terminal).")] = False,
    top: Annotated[int, typer.Option(
        "--top", min=1, help="Rows of the live table.")] = 20,
    sort: Annotated[str | None, typer.Option(
        "--sort", metavar="COLUMN",
        help="Sort the live table by this metric or attribute, descending "
             "(default: each gadget's, e.g. tcp.sent); with several gadgets, it sorts "
             "those that have it.")] = None,
    idle_expiry: Annotated[str | None, typer.Option(
        "--idle-expiry", metavar="DURATION",
        help="Drop a series from the kernel maps and the export once it has not "
             f"changed for this long (0 keeps every series; default "
             f"{format_duration(DEFAULT_IDLE_EXPIRY)}).", show_default=False)] = None,
    pid: Annotated[list[int] | None, typer.Option(
        "--pid", metavar="PID",
        help="Only these processes (repeat for several, up to 16); filtered in the kernel, "
             "by every gadget that can (not dns: packets carry no process).")]
    = None,
    comm: Annotated[str | None, typer.Option(
        "--comm", metavar="NAME",
        help="Only processes with this command name, as in /proc/PID/comm "
             "(15 characters at most); filtered in the kernel.")] = None,
    cgroup: Annotated[Path | None, typer.Option(
        "--cgroup", metavar="DIR",
        help="Only processes in this cgroup v2 directory or below it, e.g. "
             "/sys/fs/cgroup/system.slice/nginx.service; filtered in the kernel.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", metavar="[GADGET.]NAME=VALUE",
        help="Set a parameter of a gadget (repeat for several), e.g. "
             "file.path_prefix=/etc; the gadget's name may be left out where only one "
             "gadget of the run has the parameter. 'ig-metrics gadgets describe GADGET' "
             "lists them.")] = None,
    health_listen: Annotated[str | None, typer.Option(
        "--health-listen", metavar="HOST:PORT",
        help="Serve /readyz (attached, first reading taken), /livez and /healthz (the "
             "gadgets and every exporter) here, e.g. 127.0.0.1:9465; the DaemonSet's "
             "probes use them. Also /summary?sort=COLUMN&top=N: the top rows and totals "
             "as JSON, what 'run --cluster' and 'top --cluster' read.")] = None,
    cluster: Annotated[bool, typer.Option(
        "--cluster",
        help="Run on every node of the Kubernetes cluster instead: a DaemonSet of this "
             "run (deleted on exit) and one live table of all nodes, read through the "
             "API server. See docs/kubernetes.md.")] = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = "ig-metrics",
    node: Annotated[list[str] | None, typer.Option(
        "--node", metavar="NAME",
        help="With --cluster: only this node (repeat for several).")] = None,
    node_selector: Annotated[str | None, typer.Option(
        "--node-selector", metavar="KEY=VALUE[,...]",
        help="With --cluster: only nodes with these labels.")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", metavar="IMAGE",
        help="With --cluster (required there): the ig-metrics image the nodes pull, "
             "built from the Dockerfile and pushed, e.g. "
             "registry.example/ig-metrics:0.1.0.")] = None,
) -> None:
    """Run one or more gadgets and stream their metrics to every exporter of a profile.

    Needs root (or CAP_BPF and CAP_PERFMON). Ctrl-C or SIGTERM stops at once:
    every program is detached, a final export is made, and the exit code is 0.

    Examples:
      [bold]ig-metrics run --gadget tcp --profile local[/bold]
      [bold]ig-metrics run -g tcp,dns,blockio --profile local[/bold]   (one process, one endpoint)
      [bold]ig-metrics run -p node[/bold]   (the gadgets the profile names: gadgets: [tcp, dns])
      [bold]ig-metrics run --gadget tcp --profile otlp-prod --no-tui --interval 15s[/bold]
      [bold]ig-metrics run -g tcp --duration 60s --sort tcp.received --top 10[/bold]
      [bold]ig-metrics run -g tcp --comm nginx[/bold]   (only processes named nginx)
      [bold]ig-metrics run -g file --param path_prefix=/etc[/bold]
      [bold]ig-metrics run -g tcp --no-tui --health-listen 127.0.0.1:9465[/bold]
        (then: curl 127.0.0.1:9465/readyz)
      [bold]ig-metrics run -g tcp -p otlp-prod --cluster --context prod --duration 5m[/bold]
        (every node of the cluster; Ctrl-C deletes what the run created)
      [bold]ig-metrics run -g tcp --cluster --node worker-1 --image registry.example/ig-metrics:0.1.0[/bold]
    """
    interval_seconds = _duration(interval)
    duration_seconds = _duration(duration)
    expiry_seconds = 0.0 if idle_expiry is not None and idle_expiry.strip() == "0" \
        else _duration(idle_expiry)
    names = split_names(gadget or ())
    try:
        process_filter = ProcessFilter(tuple(pid or ()), comm, cgroup)
    except FilterError as error:
        fail(str(error))
    try:
        health_address = parse_listen(health_listen) if health_listen is not None else None
    except ValueError as error:
        fail(f"--health-listen: {error}")
    directory, _rule = resolve_profiles_dir(profiles_dir)
    from ig_metrics.catalog.loading import load_catalog  # every exporter type: start-up cost

    catalog = load_catalog([directory])
    try:
        chosen = catalog.profile(profile, interval_override=interval_seconds)
    except ConfigError as error:
        fail(str(error))
    names = names or list(chosen.gadgets)
    if not names:
        fail(f"no gadget to run: name one with --gadget (e.g. -g tcp, or -g tcp,dns), or give "
             f"profile {chosen.name} a list of gadgets (gadgets: [tcp, dns]) in {chosen.file}")
    try:
        specs = select_gadgets(names, param or ())
    except SelectionError as error:
        fail(str(error))
    try:
        sorts = sort_columns(specs, sort)
    except UnknownSortColumn as error:
        fail(str(error))
    if process_filter.active and all(spec.no_process_filter for spec in specs):
        fail(f"--pid, --comm and --cgroup do not apply to gadget "
             f"{', '.join(spec.name for spec in specs)}: {specs[0].no_process_filter}; "
             "run it without them")
    # A name no gadget has (a typo) was only a warning while loading: refused
    # now that the gadgets are known to lack it too. (Only with a selection:
    # the built-in gadgets' names take ~0.1 s to read.)
    if chosen.attributes.active:
        names_here = tuple(name for spec in specs for name in spec.attribute_names)
        unknown = selection_problems(chosen.attributes, (*builtin_attribute_names(), *names_here),
                                     f"gadget {','.join(spec.name for spec in specs)}",
                                     shown=names_here)
        if unknown:
            fail("\n".join(str(problem) for problem in unknown))
    if cluster:
        # The pods run the profile as deploy writes it: flags that would change
        # what they run are refused, not silently dropped.
        local_only = {"--interval": interval, "--pid": pid, "--comm": comm, "--cgroup": cgroup,
                      "--param": param, "--idle-expiry": expiry_seconds is not None}
        given = [flag for flag, value in local_only.items() if value]
        if given:
            fail(f"{', '.join(given)}: not with --cluster (the pods run the profile as "
                 "'ig-metrics deploy' writes it)")
        options = cluster_options(specs, profile, namespace=namespace, image=image,
                                  nodes=node or (), node_selector=node_selector)
        raise typer.Exit(run_cluster(specs, options, directory, kubeconfig=kubeconfig,
                                     context=context, duration=duration_seconds,
                                     use_tui=not no_tui and sys.stdout.isatty(), top=top,
                                     sorts=sorts, sort=sort))
    for warning in catalog.warnings:
        typer.echo(str(warning), err=True)

    from ig_metrics.bpf.environment import preflight  # after input checks: bad input exits 2
    problems = list(dict.fromkeys(line for spec in specs for line in preflight(spec)))
    if problems:
        fail("\n".join(problems) + "\nRun 'ig-metrics doctor' for details.",
             ExitCode.RUNTIME_FAILURE)

    use_tui = not no_tui and sys.stdout.isatty()
    console = Console(stderr=not use_tui)
    _configure_logging(console, use_tui)
    code = _run_agent(specs, chosen, process_filter, console=console, use_tui=use_tui,
                      duration=duration_seconds, top=top, sorts=sorts,
                      health_address=health_address,
                      idle_expiry=expiry_seconds if expiry_seconds is not None
                      else DEFAULT_IDLE_EXPIRY)
    raise typer.Exit(code)


def _configure_logging(console: Console, use_tui: bool) -> None:
    root = logging.getLogger("ig_metrics")
    root.handlers.clear()
    if use_tui:
        handler: logging.Handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def _run_agent(specs: list[GadgetSpec], profile, process_filter, *, console: Console,
               use_tui: bool, duration: float | None, top: int, sorts: list[str],
               idle_expiry: float, health_address: HostPort | None = None) -> int:
    from ig_metrics.app.agent import Agent
    from ig_metrics.app.summaryservice import SummaryService
    from ig_metrics.pipeline.probes import HealthServer  # http.server: start-up cost

    # The process' malloc policy, as gc.freeze below is its collector's: set
    # before the compiler's allocations, so that they too are mapped apart.
    fix_malloc_thresholds()
    agent = Agent(specs, profile, idle_expiry=idle_expiry, console=console,
                  process_filter=process_filter)
    health = None
    if health_address is not None:
        # Before the gadgets compile: /readyz says "not yet" rather than nothing.
        try:
            health = HealthServer(health_address, agent.health,
                                  {SUMMARY_PATH: SummaryService(agent).answer})
        except OSError as error:
            typer.echo(f"error: --health-listen {health_address}: {error.strerror or error}",
                       err=True)
            return ExitCode.RUNTIME_FAILURE
        health.start()
    try:
        return _run_started(agent, profile, process_filter, console=console, use_tui=use_tui,
                            duration=duration, top=top, sorts=sorts)
    finally:
        if health is not None:
            health.close()


def _run_started(agent, profile, process_filter, *, console: Console, use_tui: bool,
                 duration: float | None, top: int, sorts: list[str]) -> int:
    from ig_metrics.app.agent import RunError

    stop = threading.Event()
    with StopOnSignals(stop):
        try:
            agent.start()
        except RunError as error:
            typer.echo(f"error: {error}", err=True)
            return ExitCode.RUNTIME_FAILURE
        # What start-up made (modules, bcc's tables, the SDK, the exporters) lives
        # as long as this process. Frozen, Python's full collections no longer walk
        # it: each tick's snapshot outlives a tick, so one comes every few ticks,
        # and at ~60k start-up objects it cost ~35 ms (docs/performance.md). The
        # process' policy, so here and not in the Agent the tests also run.
        gc.collect()
        gc.freeze()
        log = logging.getLogger("ig_metrics.run")
        try:
            _run_loop(agent, profile, process_filter, stop, console=console,
                      use_tui=use_tui, duration=duration, top=top, sorts=sorts, log=log)
        finally:
            final = agent.stop()
            if final is not None:
                log.info("stopped: programs detached; final reading of %d series "
                         "handed to the exporters", final.series_count)
        return ExitCode.OK


def _run_loop(agent, profile, process_filter, stop: threading.Event, *, console: Console,
              use_tui: bool, duration: float | None, top: int, sorts: list[str],
              log: logging.Logger) -> None:
    """Ticks (and the live table or the summary lines) until stopped."""
    from ig_metrics.ui.live import LiveView, summary_line

    specs = agent.specs
    if use_tui:
        title = f"ig-metrics · {agent.name} · profile {profile.name}"
        if process_filter.active:
            title += f" · {process_filter.describe()}"
        with LiveView(specs, top=top, sorts=sorts, title=title, console=console) as view:
            agent.run(stop, duration=duration,
                      tick_interval=min(UI_TICK_INTERVAL, agent.tick_interval),
                      refresh=lambda: view.update(agent.latest(), agent.statuses()),
                      refresh_interval=UI_REFRESH_INTERVAL)
        return
    previous: dict[str, Snapshot] = {}

    def log_summary(snapshot) -> None:
        # One line per gadget per interval, the exporters' states on the last.
        for index, spec in enumerate(specs):
            statuses = agent.statuses() if index == len(specs) - 1 else []
            log.info(summary_line(spec, previous.get("last"), snapshot, statuses))
        previous["last"] = snapshot

    agent.run(stop, duration=duration, tick_interval=agent.tick_interval, on_tick=log_summary)


def register(app: typer.Typer) -> None:
    app.command("run")(run)

