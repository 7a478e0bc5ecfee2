"""The bcc boundary for one gadget: compile its C source and load (verify) every
program, attach them to their hooks, detach them, and report their kernel-side
statistics. Compiling and loading happen before anything is attached, so a
program the verifier refuses never leaves a half-attached gadget behind."""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ig_metrics.bpf.cgroupfs import process_cgroup
from ig_metrics.bpf.filters import ProcessFilter
from ig_metrics.bpf.hookplan import PROBE_KINDS, HookPlan, plan_hooks
from ig_metrics.bpf.kernel import DEFAULT_PATHS, find_tracefs
from ig_metrics.bpf.maps import object_info
from ig_metrics.gadgets import INCLUDE_DIR, is_builtin
from ig_metrics.gadgets.hooks import HOOK_KINDS
from ig_metrics.gadgets.seeders import SEEDERS
from ig_metrics.gadgets.spec import GadgetSpec, Hook

SHARED_HEADER = "ig_metrics.h"
_INCLUDE_LINE = f'#include "{SHARED_HEADER}"'
_DIAGNOSTIC = re.compile(r"^/virtual/main\.c:(\d+):(\d+): (error|warning|note): (.*)$")
# LLVM's code generator reports e.g. a stack over 512 bytes for a whole function.
_BACKEND_DIAGNOSTIC = re.compile(
    r"^error: /virtual/main\.c:\d+:\d+: in function (\w+)[^:]*: (.*)$")
MAX_DIAGNOSTIC_LINES = 12
TRIAL_COMPILE_TIMEOUT = 120.0
_TRIAL_COMPILE = ("import sys\nfrom bcc import BPF\n"
                  "BPF(text=sys.stdin.buffer.read(), cflags=sys.argv[1:])\n")


class GadgetLoadError(Exception):
    """A gadget that cannot be compiled, loaded or attached; the message says
    which gadget, which program or hook, and the kernel's or compiler's reason."""


@dataclass(frozen=True, slots=True)
class ProgramStats:
    """Kernel counters of one loaded program (run_time_ns and run_cnt grow only
    while `kernel.bpf_stats_enabled` is 1; recursion_misses always)."""

    name: str
    id: int
    run_time_ns: int
    run_count: int
    missed: int                    # runs skipped because another BPF program was running


class _ProgInfo(ct.Structure):
    """struct bpf_prog_info from linux/bpf.h, up to the fields read here."""

    _fields_ = [
        ("type", ct.c_uint32), ("id", ct.c_uint32), ("tag", ct.c_uint8 * 8),
        ("jited_prog_len", ct.c_uint32), ("xlated_prog_len", ct.c_uint32),
        ("jited_prog_insns", ct.c_uint64), ("xlated_prog_insns", ct.c_uint64),
        ("load_time", ct.c_uint64), ("created_by_uid", ct.c_uint32),
        ("nr_map_ids", ct.c_uint32), ("map_ids", ct.c_uint64), ("name", ct.c_char * 16),
        ("ifindex", ct.c_uint32), ("gpl_compatible", ct.c_uint32),
        ("netns_dev", ct.c_uint64), ("netns_ino", ct.c_uint64),
        ("nr_jited_ksyms", ct.c_uint32), ("nr_jited_func_lens", ct.c_uint32),
        ("jited_ksyms", ct.c_uint64), ("jited_func_lens", ct.c_uint64),
        ("btf_id", ct.c_uint32), ("func_info_rec_size", ct.c_uint32),
        ("func_info", ct.c_uint64), ("nr_func_info", ct.c_uint32),
        ("nr_line_info", ct.c_uint32), ("line_info", ct.c_uint64),
        ("jited_line_info", ct.c_uint64), ("nr_jited_line_info", ct.c_uint32),
        ("line_info_rec_size", ct.c_uint32), ("jited_line_info_rec_size", ct.c_uint32),
        ("nr_prog_tags", ct.c_uint32), ("prog_tags", ct.c_uint64),
        ("run_time_ns", ct.c_uint64), ("run_cnt", ct.c_uint64),
        ("recursion_misses", ct.c_uint64),
    ]


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collects what bcc, clang and the verifier print on file descriptor 2."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def program_source(spec: GadgetSpec) -> tuple[str, int, int]:
    """The text bcc compiles, and where the shared header was inlined: bcc
    rewrites map calls only in its main file, so the header cannot be #included.
    Returns (text, line of the include, number of lines inserted)."""
    text = spec.program.read_text(encoding="utf-8")
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.strip() == _INCLUDE_LINE:
            header = (INCLUDE_DIR / SHARED_HEADER).read_text(encoding="utf-8").rstrip("\n")
            header_lines = header.split("\n")
            lines[index:index + 1] = header_lines
            return "\n".join(lines), index + 1, len(header_lines)
    return text, 0, 0


def _explain_compile_errors(spec: GadgetSpec, output: list[str], include_line: int,
                            inserted: int) -> str:
    """bcc's diagnostics trimmed to the errors (each with the source line and
    caret clang prints under it), with lines of the user's file."""
    kept: list[str] = []
    for index, line in enumerate(output):
        backend = _BACKEND_DIAGNOSTIC.match(line)
        if backend is not None:
            kept.append(f"{spec.program}: error: in function {backend.group(1)}: "
                        f"{backend.group(2)}")
            continue
        match = _DIAGNOSTIC.match(line)
        if match is None:
            continue
        number, column, severity, message = match.groups()
        number = int(number)
        if include_line and number >= include_line + inserted:
            where = f"{spec.program}:{number - inserted + 1}:{column}"
        elif include_line and number >= include_line:
            where = f"{INCLUDE_DIR / SHARED_HEADER}:{number - include_line + 1}:{column}"
        else:
            where = f"{spec.program}:{number}:{column}"
        if severity != "warning":
            kept.append(f"{where}: {severity}: {message}")
            kept.extend(_quoted_source(output[index + 1:index + 3]))
    if not kept:
        kept = [line for line in output if line.strip()][-MAX_DIAGNOSTIC_LINES:]
    return "\n".join(kept[:MAX_DIAGNOSTIC_LINES])


def _quoted_source(lines: list[str]) -> list[str]:
    """The source line and caret under a diagnostic, if clang printed them."""
    if len(lines) == 2 and lines[1].strip().startswith("^") and \
            not _DIAGNOSTIC.match(lines[0]):
        return lines
    return []


def _trial_compile(text: str, cflags: list[str]) -> list[str] | None:
    """Compiles in a child process: LLVM's code generator ends the process that
    runs it (exit(1)) on some errors, such as a BPF stack over 512 bytes, which
    would take ig-metrics down without a word. None when it compiles, else what
    the compiler printed."""
    result = subprocess.run([sys.executable, "-c", _TRIAL_COMPILE, *cflags], input=text.encode(),
                            capture_output=True, timeout=TRIAL_COMPILE_TIMEOUT)
    if result.returncode == 0:
        return None
    return result.stderr.decode("utf-8", "replace").splitlines()


def _explain_load_error(output: list[str]) -> str:
    """The verifier's verdict: its last lines say why it refused."""
    interesting = [line for line in output
                   if line.strip() and not line.startswith(("processed ", "HINT"))]
    return "\n".join(interesting[-6:])


def _probe_event(hook: Hook) -> str:
    """The tracefs event bcc makes for a kprobe or kretprobe of this process."""
    prefix = "r_" if hook.kind == "kretprobe" else "p_"
    return f"{prefix}{hook.target.replace('+', '_').replace('.', '_')}_bcc_{os.getpid()}"


def _probe_misses() -> dict[str, int]:
    """Event -> calls its kprobe or kretprobe missed (a kretprobe misses a
    return when all of its instances are taken), from tracefs' kprobe_profile."""
    tracefs = find_tracefs(DEFAULT_PATHS)
    try:
        lines = (tracefs / "kprobe_profile").read_text().splitlines() if tracefs else []
    except OSError:
        return {}     # no kprobes: nothing missed
    misses = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            misses[fields[0]] = int(fields[2])
    return misses


class GadgetProgram:
    """One gadget's programs and maps in the kernel."""

    def __init__(self, spec: GadgetSpec, cflags: tuple[str, ...] = (),
                 process_filter: ProcessFilter | None = None,
                 plan: HookPlan | None = None) -> None:
        self.spec = spec
        self.process_filter = process_filter or ProcessFilter()
        # which hooks this kernel has (tests may give a plan of their own)
        self.plan = plan or plan_hooks(spec)
        # the gadget's parameters (--param) first: explicit cflags may override them
        self.cflags = (*spec.cflags(), *self.plan.cflags(), *cflags,
                       *self.process_filter.cflags())
        self.bpf: Any = None          # bcc's BPF (untyped) once loaded
        self._attached: list[Hook] = []

    def load(self) -> None:
        """Compile the C source and have the verifier accept every program."""
        if self.process_filter.active and self.spec.no_process_filter:
            raise GadgetLoadError(
                f"gadget {self.spec.name}: --pid, --comm and --cgroup do not apply to it: "
                f"{self.spec.no_process_filter}; run it without them")
        if self.plan.missing:
            raise GadgetLoadError(self.plan.refusal())
        from bcc import BPF  # bcc's import costs ~0.2 s: only when a gadget runs

        text, include_line, inserted = program_source(self.spec)
        cflags = [f"-I{INCLUDE_DIR}", *self.cflags]
        # A user's gadget is compiled once in a child first (built-in ones are
        # known to compile): an error that ends the compiling process is told.
        failed = None if is_builtin(self.spec) else _trial_compile(text, cflags)
        if failed is not None:
            raise GadgetLoadError(
                f"gadget {self.spec.name}: the BPF program does not compile:\n"
                f"{_explain_compile_errors(self.spec, failed, include_line, inserted)}")
        failure: Exception | None
        with captured_stderr() as output:
            try:
                self.bpf = BPF(text=text.encode(), cflags=cflags)
            except Exception as error:   # bcc raises plain Exception for compile errors
                failure = error
            else:
                failure = None
        if failure is not None:
            raise GadgetLoadError(
                f"gadget {self.spec.name}: the BPF program does not compile:\n"
                f"{_explain_compile_errors(self.spec, output, include_line, inserted)}")
        for hook in self.plan.hooks:
            kind = HOOK_KINDS[hook.kind].program_type(BPF)
            with captured_stderr() as output:
                try:
                    self.bpf.load_func(hook.program.encode(), kind)
                except Exception as error:   # bcc raises plain Exception
                    failure = error
            if failure is not None:
                self.close()
                raise GadgetLoadError(
                    f"gadget {self.spec.name}: the kernel ({self.plan.release}) refused "
                    f"program {hook.program} ({failure}):\n{_explain_load_error(output)}")
        self.process_filter.apply(self.bpf)

    def attach(self) -> None:
        """Attach every program; on any failure detach what was attached and raise."""
        assert self.bpf is not None, "load() first"
        for hook in self.plan.hooks:
            try:
                with captured_stderr():
                    HOOK_KINDS[hook.kind].attach(self.bpf, hook)
            except Exception as error:   # bcc raises plain Exception
                self.detach()
                raise GadgetLoadError(
                    f"gadget {self.spec.name}: cannot attach {hook.program} to "
                    f"{hook.kind} {hook.target}: {error}") from error
            self._attached.append(hook)
        self._seed()

    def _seed(self) -> None:
        """Fill maps with what existed before the programs were attached."""
        for seed in self.spec.seeds:
            SEEDERS[seed.seeder](self.table(seed.map), process_cgroup,
                                 keep=self.process_filter.keeps)

    def detach(self) -> None:
        """Detach every attached program (idempotent); maps stay readable."""
        while self._attached:
            hook = self._attached.pop()
            HOOK_KINDS[hook.kind].detach(self.bpf, hook)

    @property
    def attached(self) -> bool:
        return bool(self._attached)

    def close(self) -> None:
        """Detach and release every program and map."""
        if self.bpf is None:
            return
        self.detach()
        self.bpf.cleanup()
        self.bpf = None
        self.process_filter.close()

    def table(self, name: str):
        assert self.bpf is not None, "load() first"
        return self.bpf.get_table(name.encode())

    def has_table(self, name: str) -> bool:
        from bcc import lib
        return self.bpf is not None and lib.bpf_table_id(self.bpf.module, name.encode()) \
            != ct.c_ulonglong(-1).value

    def program_stats(self) -> list[ProgramStats]:
        stats = []
        probe_misses = _probe_misses() if any(hook.kind in PROBE_KINDS
                                              for hook in self.plan.hooks) else {}
        for hook in self.plan.hooks:
            function = self.bpf.funcs.get(hook.program.encode())
            if function is None:
                continue
            info = _ProgInfo()
            if not object_info(function.fd, info):
                continue
            missed = info.recursion_misses + probe_misses.get(_probe_event(hook), 0)
            stats.append(ProgramStats(hook.program, info.id, info.run_time_ns,
                                      info.run_cnt, missed))
        return stats

    def program_ids(self) -> list[int]:
        return [stat.id for stat in self.program_stats()]
