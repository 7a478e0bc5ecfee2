"""What a kernel offers the gadgets, as JSON on stdout: run inside each guest
of the kernel matrix (`python -m tests.guests.facts`), it gives docs/kernels.md
the hook each metric counts through there, and the kernel's features."""

from __future__ import annotations

import json
import os
import sys

from ig_metrics.bpf.hookplan import plan_hooks
from ig_metrics.bpf.kernel import DEFAULT_PATHS, kprobes_available, verifier_takes_atomics
from ig_metrics.gadgets import builtin_specs


def facts() -> dict:
    gadgets = {}
    for spec in builtin_specs():
        plan = plan_hooks(spec)
        gadgets[spec.name] = {
            "refusal": plan.refusal(),
            "metrics": {metric: [{"used": choice.used, "fallback": choice.uses_fallback,
                                  "for": choice.hook.label}
                                 for choice in choices]
                        for metric, choices in plan.metric_hooks(
                            tuple(metric.name for metric in spec.metrics)).items()},
        }
    return {"release": os.uname().release, "atomics": verifier_takes_atomics(),
            "kprobes": kprobes_available(DEFAULT_PATHS),
            "btf": DEFAULT_PATHS.btf.is_file(), "gadgets": gadgets}


if __name__ == "__main__":
    json.dump(facts(), sys.stdout, indent=1)
    sys.stdout.write("\n")
