"""Which hooks a gadget attaches on this kernel: each hook of its spec where the
kernel has the target, else the hook's fallback (all of its hooks), else none,
which refuses the gadget with the hook and the Linux version that has it.
The plan also gives the C macros the program is compiled with: the programs
chosen, the kernel's version, and whether its verifier takes atomics."""

from __future__ import annotations

from dataclasses import dataclass

from ig_metrics.bpf.kernel import (
    DEFAULT_PATHS,
    HostPaths,
    find_tracefs,
    hook_exists,
    kernel_version,
    kprobes_available,
    verifier_takes_atomics,
    version_code,
)
from ig_metrics.gadgets.spec import GadgetSpec, Hook

PROBE_KINDS = ("kprobe", "kretprobe")


@dataclass(frozen=True, slots=True)
class HookChoice:
    """One hook of the spec and what this kernel attaches for it."""

    hook: Hook
    attached: tuple[Hook, ...]     # (hook,), its fallback, or () where neither exists

    @property
    def available(self) -> bool:
        return bool(self.attached)

    @property
    def uses_fallback(self) -> bool:
        return self.available and self.attached != (self.hook,)

    @property
    def used(self) -> str:
        """What counts for it here: 'kprobe tcp_sendmsg + kretprobe tcp_sendmsg'."""
        return " + ".join(f"{hook.kind.replace('_', ' ')} {hook.target}"
                          for hook in self.attached)


@dataclass(frozen=True, slots=True)
class HookPlan:
    gadget: str
    release: str
    choices: tuple[HookChoice, ...]
    atomics: bool                  # the verifier takes compare-and-swap (Linux 5.12+)
    kprobes: bool                  # the kernel has kprobes

    @property
    def hooks(self) -> tuple[Hook, ...]:
        """Every hook attached, in the spec's order."""
        return tuple(hook for choice in self.choices for hook in choice.attached)

    @property
    def missing(self) -> tuple[HookChoice, ...]:
        return tuple(choice for choice in self.choices if not choice.available)

    def refusal(self) -> str:
        """Why the gadget cannot run here, in one line; "" when it can."""
        if not self.missing:
            return ""
        lacks = "; ".join(self._lack(choice) for choice in self.missing)
        return f"gadget {self.gadget}: this kernel ({self.release}) lacks {lacks}"

    def _lack(self, choice: HookChoice) -> str:
        text = choice.hook.label
        if choice.hook.fallback:
            text += f", and its fallback {' + '.join(h.label for h in choice.hook.fallback)}"
            if any(h.kind in PROBE_KINDS for h in choice.hook.fallback) and not self.kprobes:
                text += " (this kernel has no kprobes)"
        return text

    def cflags(self) -> tuple[str, ...]:
        """-DIG_HOOK_<PROGRAM> per program attached, the kernel's version, atomics."""
        flags = [f"-D{hook.define}" for hook in self.hooks]
        flags.append(f"-DIG_KERNEL_VERSION={version_code(kernel_version(self.release))}")
        if self.atomics:
            flags.append("-DIG_ATOMICS")
        return tuple(flags)

    def metric_hooks(self, metrics: tuple[str, ...]) -> dict[str, tuple[HookChoice, ...]]:
        """For each metric, the choices of the hooks that say they count for it."""
        return {metric: tuple(choice for choice in self.choices if metric in choice.hook.metrics)
                for metric in metrics}

    def describe(self, metrics: tuple[str, ...]) -> str:
        """Which hooks each metric counts through here, in one line:
        'tcp.sent: kprobe tcp_sendmsg + kretprobe tcp_sendmsg (for tracepoint
        sock:sock_send_length (Linux 6.3+)); tcp.received: ...'."""
        parts = []
        for metric, choices in self.metric_hooks(metrics).items():
            if choices:
                parts.append(f"{metric}: " + ", ".join(_described(c) for c in choices))
        return "; ".join(parts)


def _described(choice: HookChoice) -> str:
    if choice.uses_fallback:
        return f"{choice.used} (for {choice.hook.label})"
    return choice.used


def plan_hooks(spec: GadgetSpec, paths: HostPaths = DEFAULT_PATHS,
               atomics: bool | None = None) -> HookPlan:
    """The hooks of `spec`'s run (its parameters applied) on this kernel.
    `atomics` stands in for the verifier probe in tests."""
    if find_tracefs(paths) is None:
        choices = tuple(HookChoice(hook, (hook,)) for hook in spec.active_hooks)
    else:
        choices = tuple(_choose(hook, paths) for hook in spec.active_hooks)
    return HookPlan(spec.name, paths.release, choices,
                    verifier_takes_atomics() if atomics is None else atomics,
                    kprobes_available(paths))


def _choose(hook: Hook, paths: HostPaths) -> HookChoice:
    if hook_exists(hook, paths):
        return HookChoice(hook, (hook,))
    if hook.fallback and all(hook_exists(other, paths) for other in hook.fallback):
        return HookChoice(hook, hook.fallback)
    return HookChoice(hook, ())
