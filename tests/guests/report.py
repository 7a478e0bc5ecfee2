"""docs/kernels.md from a kernel matrix's results: per kernel, the junit XML of
the gadgets' tests and the facts the guest printed (tests/guests/facts.py):
which gadget counted exactly where, and which hook each metric used."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from ig_metrics.gadgets import PROVEN_SINCE, builtin_specs

PASSED, FAILED, NOT_RUN = "exact", "FAILED", "not run"


@dataclass(frozen=True)
class KernelResults:
    name: str                                  # the folder: "5.10", "6.1", "host"
    facts: dict                                # tests/guests/facts.py's output
    outcomes: dict[tuple[str, str], str]       # (module, test) -> PASSED or FAILED
    seconds: dict[str, float]                  # phase -> wall time

    @property
    def release(self) -> str:
        return self.facts["release"]

    def gadget_outcome(self, gadget: str) -> str:
        """exact when every test of the gadget ran and passed: its own module
        (the sampler) and its end-to-end test on Prometheus and OTLP."""
        mine = [outcome for (module, test), outcome in self.outcomes.items()
                if _module_gadget(module) == gadget
                or (module.endswith("test_gadgets_exported") and f"_{gadget}_" in f"{test}_")]
        if not mine:
            return NOT_RUN
        return PASSED if all(outcome == PASSED for outcome in mine) else FAILED

    def counted(self, gadget: str) -> int:
        return sum(1 for (module, test) in self.outcomes
                   if _module_gadget(module) == gadget
                   or (module.endswith("test_gadgets_exported") and f"_{gadget}_" in f"{test}_"))


def _module_gadget(module: str) -> str:
    """tests.test_gadget_exec -> exec; tests.test_tcp_gadget -> tcp."""
    name = module.rsplit(".", 1)[-1]
    if name == "test_tcp_gadget":
        return "tcp"
    return name.removeprefix("test_gadget_") if name.startswith("test_gadget_") else ""


def read_results(folder: Path, name: str) -> KernelResults | None:
    facts_file = folder / "facts.json"
    if not facts_file.exists():
        return None
    outcomes: dict[tuple[str, str], str] = {}
    junit = folder / "junit.xml"
    if junit.exists():
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            failed = any(child.tag in ("failure", "error", "skipped") for child in case)
            outcomes[(case.get("classname", ""), case.get("name", ""))] = \
                FAILED if failed else PASSED
    seconds = {}
    phases = folder / "phases"
    if phases.exists():
        for line in phases.read_text().splitlines():
            phase, start, end, _ = line.split()
            seconds[phase] = float(end) - float(start)
    return KernelResults(name, json.loads(facts_file.read_text()), outcomes, seconds)


def markdown(results: list[KernelResults], command: str, date: str) -> str:
    specs = builtin_specs()
    header = "| gadget | " + " | ".join(f"{r.name} (`{r.release}`)" for r in results) + " |"
    rule = "|---|" + "---|" * len(results)
    lines = [
        "# Kernels",
        "",
        "Every built-in gadget loads and counts exactly on Linux "
        f"{PROVEN_SINCE[0]}.{PROVEN_SINCE[1]} and later. The table below is measured, not "
        "claimed: the kernel matrix boots Debian's own kernels (bullseye's 5.10, bookworm's "
        "6.1, trixie's 6.12) under QEMU with Debian 12's userspace, sets each guest up with "
        "`scripts/setup.sh --test` as README says, and runs every gadget's exactness tests "
        "there: each gadget's own test module (the sampler against known workloads) and its "
        "end-to-end test (the real `ig-metrics run`, exporting to a Prometheus endpoint and "
        "an OTLP receiver at once). The host is the development machine's own kernel.",
        "",
        f"Measured {date} with `{command}`.",
        "",
        "## Which gadget counts exactly where",
        "",
        header, rule,
    ]
    for spec in specs:
        cells = []
        for result in results:
            outcome = result.gadget_outcome(spec.name)
            refusal = result.facts["gadgets"].get(spec.name, {}).get("refusal", "")
            count = result.counted(spec.name)
            cells.append(f"{outcome} ({count} tests)" if outcome != NOT_RUN else
                         (f"refused: {refusal}" if refusal else NOT_RUN))
        lines.append(f"| {spec.name} | " + " | ".join(cells) + " |")
    lines += ["", "## Which hook each metric counts through", "",
              "A hook the kernel lacks is replaced by the gadget's fallback (`fallback` in its "
              "gadget.yaml); `doctor`, `gadgets describe`, the run's start-up log and the "
              "self-metric `ig_metrics.gadget.hook` say the same on any machine.", "",
              "| gadget | metric | " + " | ".join(r.name for r in results) + " |",
              "|---|---|" + "---|" * len(results)]
    for spec in specs:
        for metric in spec.metrics:
            cells = []
            for result in results:
                used = result.facts["gadgets"].get(spec.name, {}).get("metrics", {}).get(
                    metric.name, [])
                cells.append("<br>".join(
                    choice["used"] + (" *(fallback)*" if choice["fallback"] else "")
                    for choice in used) or "–")
            if len(set(cells)) == 1 and cells[0] != "–":
                cells = [cells[0]] + ["same"] * (len(cells) - 1)
            lines.append(f"| {spec.name} | `{metric.name}` | " + " | ".join(cells) + " |")
    lines += ["", "## What older kernels do not show", "",
              "Measured here, and asserted per kernel by the tests:", "",
              "- tcp: a reset the kernel sends for no socket (an answer to a SYN to a closed "
              "port) fires `tcp_send_reset` on 6.12 and later, not on 5.10 and 6.1: there "
              "`tcp.resets` with `process.pid` 0 stays 0 (tests/test_tcp_gadget.py).",
              "- blockio: the loop driver of 5.10 and 6.1 issues requests from a kernel "
              "worker, direct writes among them, so `--pid`/`--comm`/`--cgroup` leave those "
              "out there; unfiltered counts are exact (tests/test_gadget_blockio.py).",
              "", "## Minimum kernel of each gadget", "",
              "| gadget | minimum | where a hook came later |", "|---|---|---|"]
    floor = f"{PROVEN_SINCE[0]}.{PROVEN_SINCE[1]}"
    for spec in specs:
        later = [f"`{hook.target}` (Linux {hook.since}): before it, "
                 f"{' + '.join(f'{other.kind} `{other.target}`' for other in hook.fallback)}"
                 for hook in spec.hooks if hook.fallback]
        lines.append(f"| {spec.name} | Linux {floor} | {'; '.join(later) or '–'} |")
    lines += ["", "How counting through a fallback differs is in docs/gadgets.md, beside each "
              "gadget's hooks.", "",
              "## On an older kernel", "",
              f"Below Linux {floor} nothing is proven. `ig-metrics doctor` then compiles and "
              "loads each gadget (its `loads:` check) instead of vouching for it, and a gadget "
              "whose hook is missing, with no fallback the kernel has, is refused before "
              "anything is attached, in one line naming the hook and the Linux version that "
              "has it, for example:", "",
              "```",
              "gadget tcp: this kernel (6.1.0-27-amd64) lacks tracepoint sock:sock_send_length "
              "(Linux 6.3+), and its fallback kprobe tcp_sendmsg + kretprobe tcp_sendmsg (this "
              "kernel has no kprobes); ...",
              "```", "",
              "A verifier that refuses a program is reported the same way: the gadget, the "
              "program, and the verifier's last lines; never a traceback, never a silent zero.",
              "", "## The kernels' features", "",
              "| | " + " | ".join(r.name for r in results) + " |",
              "|---|" + "---|" * len(results),
              "| BPF atomics beyond add (compare-and-swap; 5.12+) | "
              + " | ".join("yes" if r.facts["atomics"] else "no: a lock map instead"
                           for r in results) + " |",
              "| kprobes | " + " | ".join("yes" if r.facts["kprobes"] else "no"
                                          for r in results) + " |",
              "| BTF | " + " | ".join("yes" if r.facts["btf"] else "no" for r in results) + " |",
              "| set-up (`scripts/setup.sh --test`), s | "
              + " | ".join(f"{r.seconds.get('setup', 0):.0f}" for r in results) + " |",
              "| tests, s | " + " | ".join(f"{r.seconds.get('tests', 0):.0f}"
                                          for r in results) + " |"]
    return "\n".join(lines) + "\n"
