"""`ig-metrics doctor`: can gadgets run on this host, and if not, what to do."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ig_metrics.bpf.environment import Check, compile_checks, run_checks
from ig_metrics.cli.cluster import ContextOption, KubeconfigOption, NamespaceOption
from ig_metrics.cli.common import ExitCode, fail, plural, print_json, print_table
from ig_metrics.cluster.checks import cluster_checks
from ig_metrics.deploy.manifests import DEFAULT_NAMESPACE
from ig_metrics.gadgets import GadgetSpec, GadgetSpecError, UnknownGadget, builtin_specs, resolve
from ig_metrics.k8s.checks import attribution_checks

STATUS_MARKS = {"ok": ("✓", "green"), "fail": ("✗", "bold red"), "info": ("info", "cyan")}


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command(
        "doctor",
        epilog="Examples:\n\n"
               "  sudo ig-metrics doctor\n\n"
               "  sudo ig-metrics doctor --compile --gadget tcp\n\n"
               "  sudo ig-metrics doctor --output json | jq '.checks[] | select(.status == \"fail\")'\n\n"
               "  ig-metrics doctor --cluster --context prod --namespace ig-metrics",
    )(doctor)


def doctor(
    gadget: Annotated[list[str] | None, typer.Option(
        "--gadget", "-g", metavar="NAME_OR_DIR",
        help="Check this gadget (a built-in name or a gadget folder); repeat for several. "
             "Default: every built-in gadget.", show_default=False)] = None,
    compile_programs: Annotated[bool, typer.Option(
        "--compile",
        help="Also compile each gadget and have the kernel's verifier load its programs, "
             "without attaching them (about a second per gadget).")] = False,
    output: Annotated[OutputFormat, typer.Option(
        "--output", "-o", help="text for people, json for scripts.")] = OutputFormat.text,
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="Check the Kubernetes cluster instead of this host: the API "
                          "server, its version, and each right 'run --cluster' and 'top "
                          "--cluster' need (SelfSubjectAccessReview).")] = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = DEFAULT_NAMESPACE,
) -> None:
    """Check that this host can run eBPF gadgets, and say how to fix what is missing.

    [bold]Required[/bold] (✓ or ✗): root or CAP_BPF+CAP_PERFMON; bcc importable by this
    Python; the bpf() syscall; tracefs mounted; kernel headers bcc can compile against
    (another version's headers are fine); per gadget, every hook it attaches to, or the
    fallback it has for a hook this kernel lacks (hooks:NAME, with the Linux version
    that has a missing one), and whether it will load (loads:NAME: a built-in gadget on
    Linux 5.10 or later is proven by the kernel matrix of docs/kernels.md; anything
    else is compiled and loaded to find out).
    [bold]Informational[/bold] (info): kernel BTF, debugfs, kprobes (used only where a
    tracepoint is missing, e.g. by tcp before Linux 6.3), kernel.bpf_stats_enabled and
    kernel.unprivileged_bpf_disabled; container attribution: the cgroup v2 hierarchy
    and kubelet's pods in it, and with NODE_NAME set, whether the Kubernetes API lists
    this node's pods (for pod names).

    Exits 1 when a required check fails, 0 otherwise. On Debian 12,
    [bold]sudo ./scripts/setup.sh[/bold] fixes every miss it can (packages, headers,
    mounts); `ig-metrics run` refuses to start for the same reasons, in one line each.
    """
    if cluster:
        checks = cluster_checks(kubeconfig, context, namespace)
        if output == OutputFormat.json:
            print_json({"ok": not _failures(checks),
                        "checks": [check.as_dict() for check in checks]})
        else:
            _print_report(checks, "the cluster lets you run 'ig-metrics run --cluster'")
        raise typer.Exit(ExitCode.RUNTIME_FAILURE if _failures(checks) else ExitCode.OK)
    specs = _specs(gadget)
    checks = run_checks(specs)
    checks.extend(attribution_checks())
    if compile_programs:
        checks.extend(_compile(checks, specs))
        checks.sort(key=lambda check: not check.required)   # stable: required ones first
    if output == OutputFormat.json:
        print_json({"ok": not _failures(checks), "checks": [check.as_dict() for check in checks]})
    else:
        _print_report(checks)
    raise typer.Exit(ExitCode.RUNTIME_FAILURE if _failures(checks) else ExitCode.OK)


def _specs(names: list[str] | None) -> list[GadgetSpec]:
    if not names:
        return builtin_specs()
    try:
        return [resolve(name) for name in names]
    except (UnknownGadget, GadgetSpecError) as error:
        fail(str(error))


def _compile(checks: list[Check], specs: list[GadgetSpec]) -> list[Check]:
    """Compiling only says something once the prerequisites hold."""
    if _failures(checks):
        return [Check(f"compile:{spec.name}", False, "not tried: a required check failed",
                      "fix the failed checks first") for spec in specs]
    return compile_checks(specs)


def _failures(checks: list[Check]) -> list[Check]:
    return [check for check in checks if check.blocking]


def _print_report(checks: list[Check], passed: str = "gadgets can run here") -> None:
    table = Table(show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True, justify="center")
    table.add_column("detail")
    table.add_column("how to fix")
    for check in checks:
        mark, style = STATUS_MARKS[check.status]
        table.add_row(check.name, Text(mark, style=style), check.detail, check.fix or "—")
    print_table(table)
    failures = _failures(checks)
    if failures:
        typer.echo(f"{plural(len(failures), 'required check')} failed: "
                   f"{', '.join(check.name for check in failures)}. Not until they pass: "
                   f"{passed}.")
    else:
        typer.echo(f"Every required check passed: {passed}.")
