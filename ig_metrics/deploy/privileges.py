"""What a gadget's pod must be granted: the capabilities every gadget needs,
and one entry per hook kind for what that kind adds (docs/kubernetes.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# CAP_BPF: bpf() for maps and programs. CAP_PERFMON: tracing programs and
# perf_event_open() on tracepoints. CAP_SYS_RESOURCE: bcc raises
# RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF maps against.
BASE_CAPABILITIES = ("BPF", "PERFMON", "SYS_RESOURCE")
# Only for kernels before 5.8 (no CAP_BPF and CAP_PERFMON) and container
# runtimes whose default seccomp profile admits bpf() only with CAP_SYS_ADMIN.
LEGACY_CAPABILITY = "SYS_ADMIN"


@dataclass(frozen=True, slots=True)
class PodNeeds:
    """What a hook kind needs of the pod beyond the base capabilities."""

    capabilities: tuple[str, ...] = ()
    host_network: bool = False
    why: str = ""


HOOK_KIND_NEEDS: dict[str, PodNeeds] = {
    "tracepoint": PodNeeds(why="tracepoints fire in every namespace"),
    "raw_tracepoint": PodNeeds(why="raw tracepoints fire in every namespace"),
    # A socket filter sees the packets of the network namespace its AF_PACKET
    # socket is in: the node's, where pod traffic crosses the host ends of the
    # pods' veths. Opening a packet socket takes CAP_NET_RAW.
    "socket_filter": PodNeeds(("NET_RAW",), host_network=True,
                              why="an AF_PACKET socket in the node's network namespace"),
    # perf_event_open() of the kernel's kprobe PMU, which CAP_PERFMON allows.
    # The pods' tracefs is read-only: a kretprobe then tracks the kernel's
    # default number of calls at once, not 4,096 (gadgets/hooks.py).
    "kprobe": PodNeeds(why="kprobes fire in every namespace"),
    "kretprobe": PodNeeds(why="kretprobes fire in every namespace"),
}


class UnknownHookKind(ValueError):
    """A hook kind whose needs in a pod nobody has written down yet."""


def pod_needs(hook_kinds: Iterable[str]) -> PodNeeds:
    """Everything the given hook kinds need together."""
    capabilities: list[str] = []
    host_network = False
    for kind in hook_kinds:
        needs = HOOK_KIND_NEEDS.get(kind)
        if needs is None:
            raise UnknownHookKind(
                f"deploy does not know what a '{kind}' hook needs in a pod: add it to "
                "HOOK_KIND_NEEDS in ig_metrics/deploy/privileges.py")
        capabilities.extend(cap for cap in needs.capabilities if cap not in capabilities)
        host_network = host_network or needs.host_network
    return PodNeeds(tuple(capabilities), host_network)
