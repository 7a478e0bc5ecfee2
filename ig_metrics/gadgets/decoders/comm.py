"""Decoder for a pid field: the process's command name."""

from __future__ import annotations

from ig_metrics.model.snapshot import AttrValue


def decode_comm(value, fields, spec, ctx) -> AttrValue:
    """The name the kernel recorded for the pid when the key was made (the
    gadget's `comms` map), else /proc; '' for pid 0."""
    return ctx.command_of(int(value)) if value else ""
