"""The gadget catalog: one folder per gadget (BPF C source + gadget.yaml),
found by name among the built-in folders or given as a path. The spec reader
(spec.py), the kinds of hooks a spec may name (hooks.py), key decoders and
seeders are here; loading a gadget into the kernel is bpf/'s."""

from __future__ import annotations

import functools
from pathlib import Path

from ig_metrics.config.suggest import did_you_mean
from ig_metrics.gadgets.spec import SPEC_FILE, GadgetSpec, GadgetSpecError, load_spec

BUILTIN_DIR = Path(__file__).resolve().parent
INCLUDE_DIR = BUILTIN_DIR / "include"
# The oldest kernel (major, minor) on which the kernel matrix (scripts/kernel-matrix.sh,
# docs/kernels.md) loads every built-in gadget and finds its counts exact.
PROVEN_SINCE = (5, 10)

__all__ = ["BUILTIN_DIR", "INCLUDE_DIR", "PROVEN_SINCE", "GadgetSpec", "GadgetSpecError",
           "UnknownGadget", "builtin_attribute_names", "builtin_names", "builtin_opt_in_names",
           "builtin_specs", "is_builtin", "resolve"]


class UnknownGadget(Exception):
    """A --gadget value that is neither a built-in name nor a gadget folder."""


def is_builtin(spec: GadgetSpec) -> bool:
    return spec.file.resolve().is_relative_to(BUILTIN_DIR)


def builtin_names() -> list[str]:
    return sorted(path.parent.name for path in BUILTIN_DIR.glob(f"*/{SPEC_FILE}"))


def builtin_specs() -> list[GadgetSpec]:
    return [load_spec(BUILTIN_DIR / name / SPEC_FILE) for name in builtin_names()]


@functools.cache
def builtin_attribute_names() -> tuple[str, ...]:
    """Every attribute a series of a built-in gadget may carry ('*' ends a prefix)."""
    return tuple(dict.fromkeys(name for spec in builtin_specs() for name in spec.attribute_names))


@functools.cache
def builtin_opt_in_names() -> tuple[str, ...]:
    """The attributes of built-in gadgets that are kept only where a profile opts in."""
    return tuple(dict.fromkeys(name for spec in builtin_specs() for name in spec.opt_in_names))


def resolve(name_or_path: str) -> GadgetSpec:
    """The spec of a built-in gadget by name, or of a gadget folder by path
    (anything with a '/' or that names an existing directory)."""
    if "/" in name_or_path or Path(name_or_path).is_dir():
        folder = Path(name_or_path)
        spec_file = folder / SPEC_FILE
        if not spec_file.is_file():
            raise UnknownGadget(f"{folder}: not a gadget folder (it has no {SPEC_FILE})")
        return load_spec(spec_file)
    names = builtin_names()
    if name_or_path not in names:
        raise UnknownGadget(f"unknown gadget '{name_or_path}'{did_you_mean(name_or_path, names)}; "
                            f"available: {', '.join(names)} (or a path to a gadget folder)")
    return load_spec(BUILTIN_DIR / name_or_path / SPEC_FILE)
