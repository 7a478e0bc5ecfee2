"""Decoders for numeric key fields: as they are, or named by a table."""

from __future__ import annotations

from ig_metrics.model.snapshot import AttrValue


def decode_int(value, fields, spec, ctx) -> AttrValue:
    return int(value)


def decode_enum(value, fields, spec, ctx) -> AttrValue:
    """A number named by the attribute's `values` table; unknown numbers as digits."""
    names = dict(spec.values)
    return names.get(int(value), str(value))
