"""The cluster commands: `run --cluster` (an ephemeral DaemonSet of this run,
its nodes' progress, one live table, everything deleted on exit), `top
--cluster` (the same table over a standing `deploy --apply` deployment) and
`doctor --cluster`'s options. The core is in k8s/cluster*.py (doctor's checks
in k8s/clusterchecks.py); the table in ui/cluster.py."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ig_metrics.cli.common import ExitCode, StopOnSignals, fail
from ig_metrics.config import parse_duration
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.gadgets import GadgetSpec, GadgetSpecError, UnknownGadget, builtin_names, resolve
from ig_metrics.k8s.cluster import (FAILED, READY, RUN_ACCESS, TOP_ACCESS, ClusterError,
                                    connect, wait_gone)
from ig_metrics.k8s.clusterrun import plan_run
from ig_metrics.k8s.manifests import DEFAULT_NAMESPACE, RUN_LABEL, DeployOptions
from ig_metrics.k8s.podprofiles import DeployInputError, ScrapeEndpoint
from ig_metrics.k8s.privileges import UnknownHookKind, pod_needs
from ig_metrics.ui.rows import UnknownSortColumn, check_sort

READ_INTERVAL = 1.0          # seconds between two readings of the nodes
CLEANUP_TIMEOUT = 60.0       # seconds to wait for the run's pods to end
NO_POD_GRACE = 10.0          # seconds without any pod before saying so
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
def run_cluster(gadget: str, spec: GadgetSpec, profile: str, directory: Path, *,
                kubeconfig: Path | None, context: str | None, namespace: str, nodes: list[str],
                node_selector: str | None, image: str | None, duration: float | None,
                use_tui: bool, top: int, sort: str) -> int:
    """Create this run's objects, show the table, delete them: the exit code."""
    if gadget not in builtin_names():
        fail(f"--cluster runs a gadget built into the image: {', '.join(builtin_names())}")
    if image is None:
        fail("--cluster needs --image: the image you built from the Dockerfile and pushed to "
             "a registry the nodes pull from (e.g. --image registry.example/ig-metrics:0.1.0)")
    try:
        needs = pod_needs(hook.kind for hook in spec.hooks)
        options = DeployOptions(spec.name, profile, namespace, image, (), False, needs,
                                nodes=tuple(nodes), node_selector=parse_selector(node_selector))
        plan = plan_run(options, directory)
    except (ValueError, UnknownHookKind) as error:
        fail(str(error))
    except DeployInputError as error:
        fail("\n".join(error.lines))
    for note in plan.profiles.notes:
        typer.echo(f"note: {note}", err=True)
    if plan.added_exporter:
        typer.echo(f"note: profile {profile} has no Prometheus endpoint the CLI can read "
                   f"through the pod proxy: the pods also serve one on port "
                   f"{plan.endpoint.port} (exporter ig-metrics-cli)", err=True)
    cluster = _connect(kubeconfig, context)
    stop = threading.Event()
    created: list[tuple[str, str]] = []
    console = _console_and_logging(use_tui)
    with StopOnSignals(stop):
        try:
            missing = cluster.missing(RUN_ACCESS, namespace)
            if missing:
                _refuse(missing, namespace, cluster)
            run_id = plan.options.run_id
            typer.echo(f"run {run_id}: DaemonSet {plan.options.workload} in namespace "
                       f"{namespace} ({cluster.where}, Kubernetes {cluster.version})", err=True)
            for manifest in plan.manifests:
                if stop.is_set():
                    break
                cluster.create(manifest)
                created.append((manifest["kind"], manifest["metadata"]["name"]))
            if stop.is_set():
                return ExitCode.OK
            from ig_metrics.k8s.clusterwatch import ClusterWatch   # the exposition parser
            watch = ClusterWatch(cluster, namespace, plan.selector, spec, plan.endpoint)
            title = (f"ig-metrics · {spec.name} · profile {profile} · run {run_id} · "
                     f"{cluster.context}")
            return _show(watch, stop, console=console, use_tui=use_tui, title=title,
                         top=top, sort=sort, duration=duration)
        except ClusterError as error:
            typer.echo(f"error: {error}", err=True)
            return ExitCode.RUNTIME_FAILURE
        finally:
            if created:
                _delete(cluster, created, namespace, plan.selector)
            cluster.close()


def _delete(cluster, created: list[tuple[str, str]], namespace: str, selector: str) -> None:
    """Delete what this run created (nothing else), newest first, then wait
    for its pods to end. A failure here is reported with what is left, for
    the user to delete by the run's label."""
    try:
        for kind, name in reversed(created):
            cluster.delete(kind, name, namespace)
        left = wait_gone(cluster, namespace, selector, CLEANUP_TIMEOUT)
    except ClusterError as error:
        typer.echo(f"error: deleting this run's objects: {error}\n  delete them with: "
                   f"kubectl delete daemonsets,configmaps,serviceaccounts,pods -n {namespace} "
                   f"-l {selector}", err=True)
        return
    if left:
        typer.echo(f"warning: pods still terminating after {CLEANUP_TIMEOUT:.0f}s: "
                   f"{', '.join(left)} (their DaemonSet is deleted; Kubernetes removes them)",
                   err=True)
    else:
        typer.echo(f"deleted: {', '.join(f'{kind} {name}' for kind, name in created)}; "
                   "every pod of the run has ended", err=True)


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
def top_cluster(gadget: str | None, *, kubeconfig: Path | None, context: str | None,
                namespace: str, duration: float | None, use_tui: bool, top: int,
                sort: str | None) -> int:
    # The exposition parser: only for commands that read nodes.
    from ig_metrics.k8s.clusterwatch import ClusterWatch

    if gadget is not None and gadget not in builtin_names():
        fail(f"unknown gadget '{gadget}'{did_you_mean(gadget, builtin_names())}")
    cluster = _connect(kubeconfig, context)
    stop = threading.Event()
    with StopOnSignals(stop):
        try:
            missing = cluster.missing(TOP_ACCESS, namespace)
            if missing:
                _refuse(missing, namespace, cluster)
            daemon_set = _standing(cluster, namespace, gadget)
            template = daemon_set["spec"]["template"]
            name = template["metadata"]["labels"].get("app.kubernetes.io/component", "")
            if "-" in name:
                fail(f"DaemonSet {daemon_set['metadata']['name']} runs several gadgets "
                     f"({name.replace('-', ', ')}): top --cluster reads a DaemonSet of one "
                     "gadget; scrape the pods' Prometheus endpoints for all of them "
                     "(docs/kubernetes.md)", ExitCode.RUNTIME_FAILURE)
            try:
                spec = resolve(name)
                sort_column = check_sort(spec, sort)
            except (UnknownGadget, GadgetSpecError, UnknownSortColumn) as error:
                fail(str(error))
            annotations = template["metadata"].get("annotations", {})
            if "prometheus.io/port" not in annotations:
                fail(f"DaemonSet {daemon_set['metadata']['name']} serves no Prometheus "
                     "endpoint for the CLI to read: deploy it with a profile that has a "
                     "prometheus exporter (docs/kubernetes.md)", ExitCode.RUNTIME_FAILURE)
            endpoint = ScrapeEndpoint("", int(annotations["prometheus.io/port"]),
                                      annotations.get("prometheus.io/scheme", "http"), False)
            selector = ",".join(f"{key}={value}" for key, value in
                                daemon_set["spec"]["selector"]["matchLabels"].items())
            watch = ClusterWatch(cluster, namespace, selector, spec, endpoint)
            title = (f"ig-metrics · {spec.name} · DaemonSet {daemon_set['metadata']['name']} · "
                     f"{cluster.context}")
            return _show(watch, stop, console=_console_and_logging(use_tui), use_tui=use_tui,
                         title=title, top=top, sort=sort_column, duration=duration)
        except ClusterError as error:
            typer.echo(f"error: {error}", err=True)
            return ExitCode.RUNTIME_FAILURE
        finally:
            cluster.close()


def _standing(cluster, namespace: str, gadget: str | None) -> dict:
    """The deployment `deploy --apply` made (runs of `run --cluster` are not one)."""
    found = [daemon_set for daemon_set in
             cluster.daemon_sets(namespace, f"app.kubernetes.io/name=ig-metrics,!{RUN_LABEL}")
             if gadget is None or daemon_set["metadata"]["name"] == f"ig-metrics-{gadget}"]
    if not found:
        what = f"for gadget {gadget} " if gadget else ""
        fail(f"no ig-metrics DaemonSet {what}in namespace {namespace} ({cluster.where}): "
             "make one with 'ig-metrics deploy ... --apply', or use 'ig-metrics run "
             "--cluster'", ExitCode.RUNTIME_FAILURE)
    if len(found) > 1:
        fail(f"several ig-metrics DaemonSets in namespace {namespace}: "
             f"{', '.join(d['metadata']['name'] for d in found)}; choose one with --gadget")
    return found[0]


# --- both: the progress lines, then the table ---------------------------------------------
def _show(watch, stop: threading.Event, *, console: Console, use_tui: bool, title: str,
          top: int, sort: str, duration: float | None) -> int:
    """Progress per node until every pod is ready or failed, then the table;
    until `stop` or `duration`. Exit 1 when no node was ever read."""
    # Rich's live view: only for commands that draw it.
    from ig_metrics.ui.cluster import NO_POD, ClusterLiveView, progress_line, summary_lines

    deadline = None if duration is None else time.monotonic() + duration
    started = time.monotonic()
    settled = False
    ever_read = False
    next_summary = 0.0
    shown: dict[str, str] = {}
    view = ClusterLiveView(watch.spec, title=title, top=top, sort=sort, console=console) \
        if use_tui else None
    if view is not None:
        view.__enter__()
    try:
        while not stop.is_set():
            try:
                reading = watch.read()
            except ClusterError as error:
                # The API server went away for a moment, or a right was revoked:
                # said once per cause, retried at the next reading, until stopped.
                if shown.get("error") != str(error):
                    shown["error"] = str(error)
                    log.warning("reading the cluster: %s", error)
                stop.wait(READ_INTERVAL)
                continue
            if not settled:
                lines = [progress_line(node.pod, node.why) for node in reading.nodes]
                settled = bool(reading.nodes) and all(
                    node.pod.state in (READY, FAILED) for node in reading.nodes) \
                    and any(node.metrics is not None or node.pod.state == FAILED
                            for node in reading.nodes)
                if not reading.nodes and time.monotonic() - started > NO_POD_GRACE \
                        and shown.get("") != NO_POD:
                    shown[""] = NO_POD
                    log.info("%s", NO_POD)
                if view is not None and not settled:
                    view.show_progress(lines or [NO_POD])
                for node, line in zip(reading.nodes, lines):
                    if shown.get(node.pod.name) != line:
                        shown[node.pod.name] = line
                        log.info("%s", line)
                if settled:
                    log.info("first cluster table after %.1fs (from the first look "
                             "at the pods): %d of %d nodes read",
                             time.monotonic() - started, len(reading.ready()),
                             len(reading.nodes))
            if settled:
                ever_read = ever_read or bool(reading.ready())
                if view is not None:
                    view.update(reading)
                elif time.monotonic() >= next_summary:
                    # Once per the nodes' export interval: their numbers change no faster.
                    next_summary = time.monotonic() + max(READ_INTERVAL,
                                                          reading.export_interval()) - 0.05
                    for line in summary_lines(watch.spec, reading):
                        log.info("%s", line)
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(READ_INTERVAL if deadline is None
                      else max(0.0, min(READ_INTERVAL, deadline - time.monotonic())))
    finally:
        if view is not None:
            view.__exit__(None, None, None)
    if not ever_read:
        typer.echo("error: no node was read: see each node's line above", err=True)
        return ExitCode.RUNTIME_FAILURE
    return ExitCode.OK


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


def _connect(kubeconfig: Path | None, context: str | None):
    try:
        return connect(kubeconfig, context)
    except ClusterError as error:
        fail(f"error: {error}", ExitCode.RUNTIME_FAILURE)


def _refuse(missing, namespace: str, cluster) -> None:
    fail("error: forbidden: " + "; ".join(
        f"you may not {access.label} in namespace {namespace}" for access in missing)
        + f" ({cluster.where}). 'ig-metrics doctor --cluster' lists every right needed "
          "(docs/kubernetes.md has a Role that grants them).", ExitCode.RUNTIME_FAILURE)


def top(
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="Read the cluster (required: on one host, use 'ig-metrics run').")]
    = False,
    gadget: Annotated[str | None, typer.Option(
        "--gadget", "-g", metavar="NAME",
        help="The deployment of this gadget (needed when several are deployed).")] = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = DEFAULT_NAMESPACE,
    duration: Annotated[str | None, typer.Option(
        "--duration", metavar="DURATION", help="Stop after this long (e.g. 60s).")] = None,
    no_tui: Annotated[bool, typer.Option(
        "--no-tui", help="No live table: log one line per node per export interval "
                         "(the default when stdout is not a terminal).")] = False,
    rows: Annotated[int, typer.Option("--top", min=1, help="Rows of the live table.")] = 20,
    sort: Annotated[str | None, typer.Option(
        "--sort", metavar="COLUMN", help="Sort by this metric or attribute, descending.")]
    = None,
) -> None:
    """Show the live cluster table of a standing deployment ('deploy --apply').

    Creates nothing and changes nothing: it lists the DaemonSet's pods and reads
    each one's Prometheus endpoint through the API server's pod proxy (the user
    needs list on daemonsets and pods, get on pods/proxy and pods/log in the
    namespace). Ctrl-C stops it.

    Examples:
      [bold]ig-metrics top --cluster[/bold]
      [bold]ig-metrics top --cluster --gadget tcp --context prod -n ig-metrics[/bold]
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
    raise typer.Exit(top_cluster(gadget, kubeconfig=kubeconfig, context=context,
                                 namespace=namespace, duration=seconds, use_tui=use_tui,
                                 top=rows, sort=sort))


def register(app: typer.Typer) -> None:
    app.command("top")(top)
