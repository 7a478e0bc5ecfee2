"""The cluster commands: `run --cluster` (an ephemeral DaemonSet of this run,
its nodes' progress, one live table, everything deleted on exit), `top
--cluster` (the same table over a standing `deploy --apply` deployment) and
`doctor --cluster`'s options. The core is in k8s/cluster*.py (doctor's checks
in cluster/checks.py); the table in ui/cluster.py."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ig_metrics.cli.common import ExitCode, StopOnSignals, fail
from ig_metrics.cluster.api import Cluster, ClusterError, connect
from ig_metrics.config import parse_duration
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.deploy.manifests import DEFAULT_NAMESPACE, DeployOptions
from ig_metrics.deploy.podprofiles import DeployInputError
from ig_metrics.deploy.privileges import UnknownHookKind, pod_needs
from ig_metrics.gadgets import GadgetSpec, GadgetSpecError, UnknownGadget, builtin_names, resolve
from ig_metrics.gadgets.selection import split_names
from ig_metrics.summary.node import MAX_TOP
from ig_metrics.summary.rows import DEFAULT_TOP, UnknownSortColumn, sort_columns

if TYPE_CHECKING:
    from ig_metrics.cluster.session import Display

log = logging.getLogger("ig_metrics.cluster")

KubeconfigOption = Annotated[Path | None, typer.Option(
    "--kubeconfig", metavar="FILE",
    help="With --cluster: the kubeconfig (default: $KUBECONFIG, else ~/.kube/config).",
    show_default=False)]
ContextOption = Annotated[str | None, typer.Option(
    "--context", metavar="NAME",
    help="With --cluster: the kubeconfig context (default: its current one).",
    show_default=False)]
NamespaceOption = Annotated[str, typer.Option(
    "--namespace", "-n", metavar="NAME",
    help="With --cluster: the namespace (it must exist and allow privileged pods).")]


# --- run --cluster -----------------------------------------------------------------------
def run_cluster(specs: Sequence[GadgetSpec], options: DeployOptions, directory: Path, *,
                kubeconfig: Path | None, context: str | None, duration: float | None,
                use_tui: bool, top: int, sorts: Sequence[str], sort: str | None) -> int:
    """Create this run's objects, show the table, delete them: the exit code."""
    from ig_metrics.cluster.session import run_on_cluster  # the kubernetes client

    cluster = _connect(kubeconfig, context)
    console = _console_and_logging(use_tui)

    def session(stop: threading.Event, stack: ExitStack) -> bool:
        def display(plan) -> Display:
            title = (f"ig-metrics · profile {options.profile} · run {plan.options.run_id} · "
                     f"{cluster.context}")
            return _display(specs, sorts, console, use_tui, title, top, stack)

        try:
            return run_on_cluster(cluster, options, directory, stop, sort=sort, top=top,
                                  display=display, duration=duration,
                                  say=lambda line: typer.echo(line, err=True))
        except DeployInputError as error:
            fail("\n".join(error.lines))

    return _until_stopped(cluster, session)


def cluster_options(specs: Sequence[GadgetSpec], profile: str, *, namespace: str,
                    image: str | None, nodes: Sequence[str],
                    node_selector: str | None) -> DeployOptions:
    """What the run's DaemonSet runs, from the command line (exit 2 on bad input)."""
    foreign = [spec.name for spec in specs if spec.name not in builtin_names()]
    if foreign:
        fail(f"--cluster runs gadgets built into the image ({', '.join(builtin_names())}), "
             f"not {', '.join(foreign)}")
    if image is None:
        fail("--cluster needs --image: the image you built from the Dockerfile and pushed to "
             "a registry the nodes pull from (e.g. --image registry.example/ig-metrics:0.1.0)")
    try:
        needs = pod_needs(hook.kind for spec in specs for hook in spec.hooks)
        return DeployOptions(",".join(spec.name for spec in specs), profile,
                             namespace=namespace, image=image, needs=needs,
                             nodes=tuple(nodes), node_selector=parse_selector(node_selector))
    except (ValueError, UnknownHookKind) as error:
        fail(str(error))


def parse_selector(text: str | None) -> tuple[tuple[str, str], ...]:
    """--node-selector KEY=VALUE[,KEY=VALUE]; ValueError naming the bad part."""
    pairs = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, equals, value = part.strip().partition("=")
        if not equals or not key:
            raise ValueError(f"--node-selector: '{part.strip()}' is not KEY=VALUE")
        pairs.append((key, value))
    return tuple(pairs)


# --- top --cluster -----------------------------------------------------------------------
def top_cluster(gadgets: Sequence[str], *, kubeconfig: Path | None, context: str | None,
                namespace: str, duration: float | None, use_tui: bool, top: int,
                sort: str | None) -> int:
    from ig_metrics.cluster.session import find_standing, follow  # the kubernetes client
    from ig_metrics.cluster.watch import ClusterWatch

    cluster = _connect(kubeconfig, context)

    def session(stop: threading.Event, stack: ExitStack) -> bool:
        standing = find_standing(cluster, namespace, gadgets)
        try:
            specs = [resolve(name) for name in standing.gadgets]
            sorts = sort_columns(specs, sort)
        except (UnknownGadget, GadgetSpecError, UnknownSortColumn) as error:
            fail(str(error))
        title = f"ig-metrics · DaemonSet {standing.name} · {cluster.context}"
        display = _display(specs, sorts, _console_and_logging(use_tui), use_tui, title, top,
                           stack)
        with ClusterWatch(cluster, namespace, standing.selector, standing.port, sort=sort,
                          top=top) as watch:
            return follow(watch, stop, display, duration=duration)

    return _until_stopped(cluster, session)


# --- both ----------------------------------------------------------------------------------
def _display(specs: Sequence[GadgetSpec], sorts: Sequence[str], console: Console,
             use_tui: bool, title: str, top: int, stack: ExitStack) -> Display:
    """The live table on a terminal, else log lines; closed with `stack`."""
    # Rich's live view: only for commands that draw it.
    from ig_metrics.ui.cluster import ClusterLiveView, LogDisplay

    if not use_tui:
        return LogDisplay(specs, log)
    return stack.enter_context(ClusterLiveView(specs, title=title, top=top, sorts=sorts,
                                               console=console))


def _until_stopped(cluster: Cluster,
                   session: Callable[[threading.Event, ExitStack], bool]) -> int:
    """Run `session` (whether it read a node) until Ctrl-C or SIGTERM: the exit
    code. 0 once a node was read, or when the user stopped it before any could
    be (as run --help says); 1 when it ended with none read, or the cluster
    refused something."""
    stop = threading.Event()
    with StopOnSignals(stop), ExitStack() as stack:
        try:
            read = session(stop, stack)
        except ClusterError as error:
            typer.echo(f"error: {error}", err=True)
            return ExitCode.RUNTIME_FAILURE
        finally:
            cluster.close()
    if read or stop.is_set():
        return ExitCode.OK
    typer.echo("error: no node was read: see each node's line above", err=True)
    return ExitCode.RUNTIME_FAILURE


def _console_and_logging(use_tui: bool) -> Console:
    """The console the table is drawn on; with --no-tui, log lines on stderr."""
    console = Console(stderr=not use_tui)
    root = logging.getLogger("ig_metrics")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    if not use_tui:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    return console


def _connect(kubeconfig: Path | None, context: str | None) -> Cluster:
    try:
        return connect(kubeconfig, context)
    except ClusterError as error:
        fail(f"error: {error}", ExitCode.RUNTIME_FAILURE)


def top(
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="Read the cluster (required: on one host, use 'ig-metrics run').")]
    = False,
    gadget: Annotated[list[str] | None, typer.Option(
        "--gadget", "-g", metavar="NAME[,...]",
        help="The deployment running these gadgets (needed when several are deployed); "
             "repeat or separate with commas.", show_default=False)] = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = DEFAULT_NAMESPACE,
    duration: Annotated[str | None, typer.Option(
        "--duration", metavar="DURATION", help="Stop after this long (e.g. 60s).")] = None,
    no_tui: Annotated[bool, typer.Option(
        "--no-tui", help="No live table: log one line per node per export interval "
                         "(the default when stdout is not a terminal).")] = False,
    rows: Annotated[int, typer.Option("--top", min=1, max=MAX_TOP,
                                      help="Rows of each gadget's table.")] = DEFAULT_TOP,
    sort: Annotated[str | None, typer.Option(
        "--sort", metavar="COLUMN",
        help="Sort by this metric or attribute, descending (each node sends its top rows "
             "by it; with several gadgets, it sorts those that have it).")] = None,
) -> None:
    """Show the live cluster table of a standing deployment ('deploy --apply').

    Creates nothing and changes nothing: it watches the DaemonSet's pods and reads
    each agent's summary (its top rows and totals) through the API server's pod
    proxy, every node at once (the user needs list on daemonsets, list and watch
    on pods, get on pods/proxy and pods/log in the namespace). Ctrl-C stops it.

    Examples:
      [bold]ig-metrics top --cluster[/bold]
      [bold]ig-metrics top --cluster --gadget tcp --context prod -n ig-metrics[/bold]
      [bold]ig-metrics top --cluster -g tcp,dns --sort tcp.received --top 10[/bold]
      [bold]ig-metrics top --cluster --no-tui --duration 30s[/bold]
    """
    if not cluster:
        fail("top reads a cluster: add --cluster (on this host, 'ig-metrics run' shows "
             "the same table)")
    try:
        seconds = None if duration is None else parse_duration(duration)
    except ValueError as error:
        fail(f"--duration: {error}")
    use_tui = not no_tui and sys.stdout.isatty()
    names = split_names(gadget or ())
    unknown = [name for name in names if name not in builtin_names()]
    if unknown:
        fail(f"unknown gadget '{unknown[0]}'{did_you_mean(unknown[0], builtin_names())}")
    raise typer.Exit(top_cluster(names, kubeconfig=kubeconfig, context=context,
                                 namespace=namespace, duration=seconds, use_tui=use_tui,
                                 top=rows, sort=sort))


def register(app: typer.Typer) -> None:
    app.command("top")(top)
