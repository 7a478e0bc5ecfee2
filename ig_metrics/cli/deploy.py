"""`ig-metrics deploy`: the Kubernetes manifests that run a gadget on every node
(printed, or applied with kubectl)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Annotated

import typer

from ig_metrics.app.mixin.deploy import (
    MonitoringError,
    monitoring_config_map,
    pod_monitor,
    pod_monitor_notes,
    prometheus_rule,
)
from ig_metrics.app.mixin.rules import DEFAULT_RUNBOOK_BASE
from ig_metrics.catalog.directories import resolve_profiles_dir
from ig_metrics.cli.common import ExitCode, ProfilesDirOption, fail
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.deploy.manifests import (
    DEFAULT_CGROUP2_PATH,
    DEFAULT_KUBE_VERSION,
    DEFAULT_NAMESPACE,
    HEALTH_PORT,
    PLACEHOLDER_IMAGE,
    SECCOMP_CHOICES,
    DeployOptions,
    build_manifests,
    parse_env,
    pod_environment,
    render,
)
from ig_metrics.deploy.podprofiles import DeployInputError, pod_profiles
from ig_metrics.deploy.privileges import UnknownHookKind, pod_needs
from ig_metrics.deploy.seccomp import KUBELET_SECCOMP_DIR, LOCALHOST_PROFILE, render_profile
from ig_metrics.gadgets import builtin_names, builtin_specs
from ig_metrics.gadgets.selection import SelectionError, select_gadgets, split_names
from ig_metrics.k8s.cgroupwrites import HYBRID_CGROUP2_PATH, HYBRID_NODE

KUBECTL_APPLY = ("kubectl", "apply", "-f", "-")


def register(app: typer.Typer) -> None:
    app.command(
        "deploy",
        epilog="Examples:\n\n"
               "  ig-metrics deploy --gadget tcp --profile local > ig-metrics.yaml\n\n"
               "  ig-metrics deploy -g tcp -p otlp-prod --image registry.example/ig-metrics:0.1.0 "
               "--env OTEL_EXPORTER_OTLP_ENDPOINT=otel-collector.observability.svc:4317 --apply\n\n"
               "  ig-metrics deploy -g tcp --image registry.example/ig-metrics:0.1.0 "
               "--seccomp localhost --kube-version 1.29 > ig-metrics.yaml\n\n"
               "  ig-metrics deploy --print-seccomp-profile > bpf.json   (for --seccomp "
               "localhost: copy to /var/lib/kubelet/seccomp/ig-metrics/ on every node)\n\n"
               "  ig-metrics deploy -g tcp --monitoring --prometheus-operator | kubectl apply -f -",
    )(deploy)


def _print_seccomp_profile(value: bool) -> None:
    if value:
        typer.echo(render_profile(), nl=False)
        raise typer.Exit()


def deploy(
    gadget: Annotated[list[str], typer.Option(
        "--gadget", "-g", metavar="NAME[,...]",
        help="The built-in gadgets every node runs, in one pod per node (see 'ig-metrics "
             "gadgets list'); repeat (-g tcp -g dns) or separate with commas.")],
    profile: Annotated[str, typer.Option(
        "--profile", "-p", metavar="NAME",
        help="The profile the nodes export with; it must be in the profiles directory, "
             "which goes into the cluster as a ConfigMap.")] = "local",
    profiles_dir: ProfilesDirOption = None,
    namespace: Annotated[str, typer.Option(
        "--namespace", "-n", metavar="NAME", help="Namespace to create and deploy into.")]
    = DEFAULT_NAMESPACE,
    image: Annotated[str | None, typer.Option(
        "--image", metavar="IMAGE",
        help="The ig-metrics image you built from the Dockerfile and pushed, fully "
             "qualified (registry.example/ig-metrics:0.1.0): none is published. Required "
             f"with --apply; printed manifests name {PLACEHOLDER_IMAGE} without it.")] = None,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", metavar="NAME=VALUE",
        help="An environment variable of the pods, for the profile's ${env:NAME} (repeat "
             "for several); the profiles are checked with exactly the pods' environment.")]
    = None,
    sys_admin: Annotated[bool, typer.Option(
        "--sys-admin",
        help="Also grant CAP_SYS_ADMIN: only for kernels older than 5.8, or container "
             "runtimes whose default seccomp profile allows bpf() only with it.")] = False,
    seccomp: Annotated[str, typer.Option(
        "--seccomp", metavar="|".join(SECCOMP_CHOICES),
        help="The pods' seccomp profile: the runtime's default, or ig-metrics' own "
             f"(Localhost {LOCALHOST_PROFILE}) for runtimes whose default allows bpf() only "
             "with CAP_SYS_ADMIN, e.g. CRI-O on containers/common before 0.60.")]
    = "runtime-default",
    kube_version: Annotated[str, typer.Option(
        "--kube-version", metavar="MAJOR.MINOR",
        help="The cluster's Kubernetes version: from 1.30 the host mounts are also "
             "recursively read-only (recursiveReadOnly: IfPossible).")] = DEFAULT_KUBE_VERSION,
    cgroup2_path: Annotated[str, typer.Option(
        "--cgroup2-path", metavar="PATH",
        help="Where the nodes mount the cgroup v2 hierarchy, the only cgroup path the pods "
             "get (read-only): /sys/fs/cgroup on pure v2 nodes; /sys/fs/cgroup/unified on "
             "hybrid v1/v2 nodes, which you tell by 'stat -fc %T /sys/fs/cgroup' saying "
             "tmpfs (cgroup2fs: pure v2) and /sys/fs/cgroup/unified existing. Left at "
             "/sys/fs/cgroup on a hybrid node, the v1 hierarchies below it stay writable "
             "from the pods where the runtime has no recursive read-only mounts "
             "(containerd 1.7, podman 4.3): the agent then warns.")] = DEFAULT_CGROUP2_PATH,
    print_seccomp_profile: Annotated[bool, typer.Option(
        "--print-seccomp-profile", is_eager=True, callback=_print_seccomp_profile,
        help="Print the seccomp profile --seccomp localhost uses, and exit.")] = False,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Apply the manifests with 'kubectl apply -f -' instead of printing "
                        "them (needs --image).")] = False,
    monitoring: Annotated[bool, typer.Option(
        "--monitoring", help="Also a ConfigMap 'ig-metrics-monitoring' of the Grafana "
                             "dashboards and Prometheus rules ('ig-metrics mixin'), "
                             "labelled for Grafana's dashboard sidecar.")] = False,
    prometheus_operator: Annotated[bool, typer.Option(
        "--prometheus-operator", help="Also a Prometheus Operator PodMonitor that scrapes "
                                      "the pods (instance = node name) and a "
                                      "PrometheusRule with the alerting and recording "
                                      "rules.")] = False,
    runbook_base: Annotated[str, typer.Option(
        "--runbook-base", metavar="URL",
        help="With --monitoring or --prometheus-operator: where docs/monitoring.md is "
             "served, for the alerts' runbook_url.")] = DEFAULT_RUNBOOK_BASE,
) -> None:
    """Print the Kubernetes manifests that run gadgets on every node.

    A namespace, a service account that may read pods (for pod and workload
    names), the profiles as a ConfigMap, and a DaemonSet running
    'ig-metrics run --no-tui' with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE,
    not privileged (packet gadgets also get CAP_NET_RAW and the node's
    network). The profiles are validated first: a mistake is reported as
    FILE:LINE and nothing is printed (exit 2). docs/kubernetes.md explains
    every privilege and mount.
    """
    names = builtin_names()
    chosen = split_names(gadget)
    for name in chosen:
        if name not in names:
            fail(f"unknown gadget '{name}'{did_you_mean(name, names)}\n"
                 f"deploy runs gadgets built into the image: {', '.join(names)}")
    try:
        specs = select_gadgets(chosen)
    except SelectionError as error:
        fail(str(error))
    try:
        needs = pod_needs(hook.kind for spec in specs for hook in spec.hooks)
    except UnknownHookKind as error:
        fail(str(error), ExitCode.RUNTIME_FAILURE)
    if apply and image is None:
        fail("--apply needs --image: the image you built from the Dockerfile and pushed to a "
             "registry the nodes pull from, fully qualified (e.g. "
             "registry.example/ig-metrics:0.1.0); no ig-metrics image is published, and an "
             f"unqualified {PLACEHOLDER_IMAGE} means docker.io/library/ig-metrics, which "
             "does not exist")
    try:
        options = DeployOptions(",".join(chosen), profile, namespace=namespace,
                                image=image or PLACEHOLDER_IMAGE, env=parse_env(env or []),
                                sys_admin=sys_admin, needs=needs, kube_version=kube_version,
                                cgroup2_path=cgroup2_path, seccomp=seccomp)
    except ValueError as error:
        fail(str(error))
    directory, _rule = resolve_profiles_dir(profiles_dir)
    try:
        profiles = pod_profiles(directory, profile, pod_environment(options))
    except DeployInputError as error:
        fail("\n".join(error.lines))
    for endpoint in profiles.scrape:
        if endpoint.port == HEALTH_PORT:
            fail(f"exporter {endpoint.exporter} listens on port {HEALTH_PORT}, the pods' health "
                 "endpoint (probes): give it another port in the profile")
    notes = list(profiles.notes)
    if image is None:
        notes.append(f"the manifests name the image {PLACEHOLDER_IMAGE}, which no registry has: "
                     "pass --image with the image you pushed")
    if cgroup2_path == DEFAULT_CGROUP2_PATH:
        notes.append(f"--cgroup2-path {DEFAULT_CGROUP2_PATH} is for pure cgroup v2 nodes; on "
                     f"{HYBRID_NODE}, pass --cgroup2-path {HYBRID_CGROUP2_PATH}: otherwise, "
                     "on a runtime without recursive read-only mounts (containerd 1.7, "
                     "podman 4.3), the pods can write the node's v1 cgroups (memory/"
                     "cgroup.procs: out of their limits), and the agent warns (log, doctor's "
                     "cgroup-writes, ig_metrics_cgroup_writable_mounts)")
    if seccomp == "localhost":
        notes.append(f"--seccomp localhost: every node needs {KUBELET_SECCOMP_DIR}/"
                     f"{LOCALHOST_PROFILE} (ig-metrics deploy --print-seccomp-profile), or the "
                     "pods do not start")
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    manifests = build_manifests(options, profiles)
    try:
        manifests += _monitoring_objects(options, profiles, monitoring, prometheus_operator,
                                         runbook_base)
    except MonitoringError as error:
        fail(str(error))
    text = render(manifests)
    if apply:
        _apply(text)
    else:
        typer.echo(text, nl=False)


def _monitoring_objects(options: DeployOptions, profiles, monitoring: bool,
                        prometheus_operator: bool, runbook_base: str) -> list[dict]:
    """The objects --monitoring and --prometheus-operator ask for: the mixin of
    every built-in gadget, the same whichever gadget this deploy runs."""
    objects = []
    if prometheus_operator:
        objects.append(pod_monitor(options, profiles))
        for note in pod_monitor_notes(profiles):
            typer.echo(f"note: {note}", err=True)
    specs = builtin_specs() if monitoring or prometheus_operator else []
    if prometheus_operator:
        objects.append(prometheus_rule(options, specs, runbook_base))
    if monitoring:
        objects.append(monitoring_config_map(options, specs, runbook_base))
    return objects


def _apply(text: str) -> None:
    kubectl = shutil.which(KUBECTL_APPLY[0])
    if kubectl is None:
        fail("--apply needs kubectl, which is not on PATH: install it, or leave out --apply "
             "and pipe the manifests yourself: ig-metrics deploy ... | kubectl apply -f -",
             ExitCode.RUNTIME_FAILURE)
    result = subprocess.run([kubectl, *KUBECTL_APPLY[1:]], input=text, text=True, check=False)
    if result.returncode != 0:
        fail(f"kubectl apply failed (exit {result.returncode}); its message is above",
             ExitCode.RUNTIME_FAILURE)
