"""`ig-metrics run`: run a gadget and export its metrics with a profile, showing
a live table on a terminal (or a one-line summary per interval in logs)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from ig_metrics.app.runoptions import RunOptions
from ig_metrics.bpf.filters import FilterError, ProcessFilter
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
from ig_metrics.config.addresses import parse_listen
from ig_metrics.config.durations import format_duration
from ig_metrics.config.model import DEFAULT_IDLE_EXPIRY
from ig_metrics.gadgets.selection import SelectionError, select_gadgets, split_names
from ig_metrics.summary.node import MAX_TOP
from ig_metrics.summary.rows import DEFAULT_TOP, UnknownSortColumn, sort_columns


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
        "--top", min=1, help="Rows of each gadget's table (with --cluster, at most "
                             f"{MAX_TOP}: each node sends that many).")] = DEFAULT_TOP,
    sort: Annotated[str | None, typer.Option(
        "--sort", metavar="COLUMN",
        help="Sort the live table by this metric or attribute, descending, by its name "
             "or the short name its header shows (default: each gadget's, e.g. tcp.sent; "
             "--sort received); with several gadgets, it sorts those that have it.")] = None,
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

    On a terminal, the live table: each counter's total and rate, p50 / p99 over
    the last 10-20 s, live rows first. Keys: s sort, / filter, i idle rows,
    g one gadget in full, p pause, q quit.

    Examples:
      [bold]ig-metrics run --gadget tcp --profile local[/bold]
      [bold]ig-metrics run -g tcp,dns,blockio --profile local[/bold]   (one process, one endpoint)
      [bold]ig-metrics run -p node[/bold]   (the gadgets the profile names: gadgets: \\[tcp, dns])
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
        if top > MAX_TOP:
            fail(f"--top: at most {MAX_TOP} with --cluster (each node sends that many rows)")
        deployed = cluster_options(specs, profile, namespace=namespace, image=image,
                                   nodes=node or (), node_selector=node_selector)
        raise typer.Exit(run_cluster(specs, deployed, directory, kubeconfig=kubeconfig,
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
    options = RunOptions(tuple(specs), chosen, tuple(sorts), process_filter,
                         idle_expiry=DEFAULT_IDLE_EXPIRY if expiry_seconds is None
                         else expiry_seconds,
                         duration=duration_seconds, top=top, health_address=health_address,
                         use_tui=use_tui)
    console = Console(stderr=not use_tui)
    _configure_logging(console, use_tui)
    # Imported here, not at the top: the agent brings bcc, which loads LLVM
    # (~60 MB, ~30 ms), and no other command needs it.
    from ig_metrics.app.localrun import RunError, run_here

    stop = threading.Event()
    with StopOnSignals(stop):
        try:
            run_here(options, stop, console)
        except RunError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(ExitCode.RUNTIME_FAILURE) from None
    raise typer.Exit(ExitCode.OK)


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


def register(app: typer.Typer) -> None:
    app.command("run")(run)

