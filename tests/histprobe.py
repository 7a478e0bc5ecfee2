"""The histprobe test gadget run for real: a BPF program that puts the getpgid()
arguments of this process into a log2 histogram (as microseconds), so a test
knows every value the kernel recorded."""

from __future__ import annotations

import os
from pathlib import Path

PROBE = Path(__file__).parent / "gadgets" / "histprobe"


def record(values: list[int], resource: tuple = ()):
    """(spec, snapshot) after the kernel recorded `values`; the program is gone."""
    from ig_metrics.bpf.loader import GadgetProgram  # noqa: PLC0415 (needs bcc)
    from ig_metrics.gadgets import resolve  # noqa: PLC0415
    from ig_metrics.pipeline.sampler import Sampler  # noqa: PLC0415

    spec = resolve(str(PROBE))
    program = GadgetProgram(spec, cflags=(f"-DTARGET_PID={os.getpid()}",))
    program.load()
    program.attach()
    try:
        for value in values:
            try:
                os.getpgid(value)
            except ProcessLookupError:
                pass               # only the call's argument matters
        return spec, Sampler(spec, program, resource=resource, idle_expiry=0).tick()
    finally:
        program.close()
