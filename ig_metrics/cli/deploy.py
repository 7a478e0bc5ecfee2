"""`ig-metrics deploy`: the Kubernetes manifests that run a gadget on every node
(printed, or applied with kubectl)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Annotated

import typer

from ig_metrics.catalog.directories import resolve_profiles_dir
from ig_metrics.cli.common import ExitCode, ProfilesDirOption, fail
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.gadgets import GadgetSpecError, builtin_names, resolve
from ig_metrics.k8s.manifests import (
    DEFAULT_IMAGE, DEFAULT_NAMESPACE, DeployOptions, build_manifests, parse_env,
    pod_environment, render,
)
from ig_metrics.k8s.podprofiles import DeployInputError, pod_profiles
from ig_metrics.k8s.privileges import UnknownHookKind, pod_needs

KUBECTL_APPLY = ("kubectl", "apply", "-f", "-")


def register(app: typer.Typer) -> None:
    app.command(
        "deploy",
        epilog="Examples:\n\n"
               "  ig-metrics deploy --gadget tcp --profile local > ig-metrics.yaml\n\n"
               "  ig-metrics deploy -g tcp -p otlp-prod --image registry.example/ig-metrics:0.1.0 "
               "--env OTEL_EXPORTER_OTLP_ENDPOINT=otel-collector.observability.svc:4317 --apply",
    )(deploy)


def deploy(
    gadget: Annotated[str, typer.Option(
        "--gadget", "-g", metavar="NAME",
        help="The built-in gadget every node runs (see 'ig-metrics gadgets list').")],
    profile: Annotated[str, typer.Option(
        "--profile", "-p", metavar="NAME",
        help="The profile the nodes export with; it must be in the profiles directory, "
             "which goes into the cluster as a ConfigMap.")] = "local",
    profiles_dir: ProfilesDirOption = None,
    namespace: Annotated[str, typer.Option(
        "--namespace", "-n", metavar="NAME", help="Namespace to create and deploy into.")]
    = DEFAULT_NAMESPACE,
    image: Annotated[str, typer.Option(
        "--image", metavar="IMAGE",
        help="The ig-metrics image (built from the Dockerfile) the nodes pull.")] = DEFAULT_IMAGE,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", metavar="NAME=VALUE",
        help="An environment variable of the pods, for the profile's ${env:NAME} (repeat "
             "for several); the profiles are checked with exactly the pods' environment.")]
    = None,
    sys_admin: Annotated[bool, typer.Option(
        "--sys-admin",
        help="Also grant CAP_SYS_ADMIN: only for kernels older than 5.8, or container "
             "runtimes whose default seccomp profile allows bpf() only with it.")] = False,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Apply the manifests with 'kubectl apply -f -' instead of printing "
                        "them.")] = False,
) -> None:
    """Print the Kubernetes manifests that run a gadget on every node.

    A namespace, a service account that may read pods (for pod and workload
    names), the profiles as a ConfigMap, and a DaemonSet running
    'ig-metrics run --no-tui' with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE,
    not privileged (packet gadgets also get CAP_NET_RAW and the node's
    network). The profiles are validated first: a mistake is reported as
    FILE:LINE and nothing is printed (exit 2). docs/kubernetes.md explains
    every privilege and mount.
    """
    names = builtin_names()
    if gadget not in names:
        fail(f"unknown gadget '{gadget}'{did_you_mean(gadget, names)}\n"
             f"deploy runs a gadget built into the image: {', '.join(names)}")
    try:
        spec = resolve(gadget)
    except GadgetSpecError as error:
        fail(str(error))
    try:
        needs = pod_needs(hook.kind for hook in spec.hooks)
    except UnknownHookKind as error:
        fail(str(error), ExitCode.RUNTIME_FAILURE)
    try:
        options = DeployOptions(gadget, profile, namespace, image, parse_env(env or []),
                                sys_admin, needs)
    except ValueError as error:
        fail(str(error))
    directory, _rule = resolve_profiles_dir(profiles_dir)
    try:
        profiles = pod_profiles(directory, profile, pod_environment(options))
    except DeployInputError as error:
        fail("\n".join(error.lines))
    for note in profiles.notes:
        typer.echo(f"note: {note}", err=True)
    text = render(build_manifests(options, profiles))
    if apply:
        _apply(text)
    else:
        typer.echo(text, nl=False)


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
