"""How each kind of hook a gadget spec may name is loaded, attached and
detached through bcc: one entry per kind in HOOK_KINDS. Adding a kind (uprobe,
socket filter, kprobe fallback...) is one class and one table line."""

from __future__ import annotations

from dataclasses import dataclass


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


HOOK_KINDS: dict[str, HookKind] = {kind.name: kind for kind in (
    Tracepoint("tracepoint"),
    RawTracepoint("raw_tracepoint"),
)}
