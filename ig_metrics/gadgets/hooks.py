"""How each kind of hook a gadget spec may name is loaded, attached and
detached through bcc: one entry per kind in HOOK_KINDS. Adding a kind (uprobe,
fentry...) is one class and one table line."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

log = logging.getLogger("ig_metrics.hooks")


@dataclass(frozen=True)
class HookKind:
    """bcc's program type for a hook kind, and how to attach and detach it."""

    name: str

    def program_type(self, bpf_class) -> int:
        raise NotImplementedError

    def attach(self, bpf, hook) -> None:
        raise NotImplementedError

    def detach(self, bpf, hook) -> None:
        raise NotImplementedError


class Tracepoint(HookKind):
    """A stable tracepoint, `category:event`; its arguments struct is generated
    by bcc from the format file (`struct tracepoint__category__event *args`)."""

    def program_type(self, bpf_class) -> int:
        return bpf_class.TRACEPOINT

    def attach(self, bpf, hook) -> None:
        bpf.attach_tracepoint(tp=hook.target.encode(), fn_name=hook.program.encode())

    def detach(self, bpf, hook) -> None:
        bpf.detach_tracepoint(hook.target.encode())


class RawTracepoint(HookKind):
    """A raw tracepoint by event name: `ctx->args[i]` are the TP_PROTO arguments."""

    def program_type(self, bpf_class) -> int:
        return bpf_class.RAW_TRACEPOINT

    def attach(self, bpf, hook) -> None:
        bpf.attach_raw_tracepoint(tp=hook.target.encode(), fn_name=hook.program.encode())

    def detach(self, bpf, hook) -> None:
        bpf.detach_raw_tracepoint(hook.target.encode())


class Kprobe(HookKind):
    """A kernel function's entry, by name: `PT_REGS_PARMn(ctx)` are its arguments.
    Kernels built without CONFIG_KPROBES have none."""

    def program_type(self, bpf_class) -> int:
        return bpf_class.KPROBE

    def attach(self, bpf, hook) -> None:
        bpf.attach_kprobe(event=hook.target.encode(), fn_name=hook.program.encode())

    def detach(self, bpf, hook) -> None:
        _detach_probe(bpf.detach_kprobe, hook)


# The most returns a kretprobe tracks at once (the kernel's own ceiling): a
# return the kernel has no instance for is missed, and with it its count. A
# thread blocked in recv() holds one, so the default (about 2 per CPU) is far
# too few for a server.
KRETPROBE_MAXACTIVE = 4096


class Kretprobe(HookKind):
    """A kernel function's return, by name: `PT_REGS_RC(ctx)` is what it returned."""

    def program_type(self, bpf_class) -> int:
        return bpf_class.KPROBE

    def attach(self, bpf, hook) -> None:
        try:
            # bcc asks for instances through tracefs' kprobe_events
            bpf.attach_kretprobe(event=hook.target.encode(), fn_name=hook.program.encode(),
                                 maxactive=KRETPROBE_MAXACTIVE)
        except Exception:    # bcc raises plain Exception: e.g. a read-only tracefs (a pod)
            log.warning("kretprobe %s: could not ask for %d instances (is tracefs read-only?): "
                        "it tracks the kernel's default number of calls at once, and counts "
                        "the returns it misses in ig_metrics.kernel.missed_events",
                        hook.target, KRETPROBE_MAXACTIVE)
            bpf.attach_kretprobe(event=hook.target.encode(), fn_name=hook.program.encode())

    def detach(self, bpf, hook) -> None:
        _detach_probe(bpf.detach_kretprobe, hook)


def _detach_probe(detach, hook) -> None:
    """bcc closes the probe's perf event (which detaches the program), then
    removes the tracefs event it named after the function and this process;
    that fails while another gadget of this process still uses an event of the
    same name (two gadgets probing one function), whose own detach removes it."""
    try:
        detach(event=hook.target.encode())
    except Exception as error:     # bcc raises plain Exception
        if "Failed to detach BPF from kprobe" not in str(error):
            raise
        log.debug("%s %s: detached; its tracefs event stays for another user in this "
                  "process", hook.kind, hook.target)


# linux/if_ether.h and asm-generic/socket.h: not in Python's socket module
ETH_P_ALL = 0x0003
SO_ATTACH_BPF = 50


@dataclass(frozen=True)
class SocketFilter(HookKind):
    """A socket filter program on an AF_PACKET socket of this network
    namespace: target `all` (every interface) or an interface name. The socket
    is SOCK_DGRAM, so the program sees each packet from its network header on,
    sent or received; what the program returns is how much of the packet to
    queue, and a program that returns 0 keeps the socket empty."""

    sockets: dict = field(default_factory=dict, compare=False, repr=False)

    def program_type(self, bpf_class) -> int:
        return bpf_class.SOCKET_FILTER

    def attach(self, bpf, hook) -> None:
        program = bpf.funcs[hook.program.encode()]
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK,
                             socket.htons(ETH_P_ALL))
        try:
            # Packets reach the socket before the filter does: let few queue.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            if hook.target != "all":
                sock.bind((hook.target, ETH_P_ALL))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, program.fd)
        except OSError:
            sock.close()
            raise
        self.sockets[(id(bpf), hook.program)] = sock

    def detach(self, bpf, hook) -> None:
        sock = self.sockets.pop((id(bpf), hook.program), None)
        if sock is not None:
            sock.close()          # the filter goes with the socket


HOOK_KINDS: dict[str, HookKind] = {kind.name: kind for kind in (
    Tracepoint("tracepoint"),
    RawTracepoint("raw_tracepoint"),
    SocketFilter("socket_filter"),
    Kprobe("kprobe"),
    Kretprobe("kretprobe"),
)}
