"""Decoder for a char[] field (a command name, a path): the text before the
first NUL."""

from __future__ import annotations

from ig_metrics.model.snapshot import AttrValue


def decode_string(value, fields, spec, ctx) -> AttrValue:
    """ctypes gives a char[] field as bytes (already cut at the first NUL) and a
    u8[] field as an array: both end at the first NUL; bytes that are not
    UTF-8 show as U+FFFD."""
    return bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")
