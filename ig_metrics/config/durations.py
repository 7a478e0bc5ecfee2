"""Durations as people write them in profiles ("500ms", "10s", "1m", "1h", "1.5s"),
converted to float seconds and back."""

from __future__ import annotations

import math
import re

UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_EXAMPLES = "500ms, 10s, 1.5s, 1m or 1h"
_DURATION = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(ms|s|m|h)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in `text` ("500ms", "10s", "1m", "1h", "1.5s"); ValueError if unparsable.

    The sign is accepted so that callers can say "must be positive" rather than
    "unparsable" for "-5s"; checking the range is the caller's business.
    """
    if not isinstance(text, str):
        raise ValueError(
            f"{text!r} is not a duration: write a number with a unit, e.g. {DURATION_EXAMPLES}"
        )
    match = _DURATION.match(text)
    if match is None:
        hint = ""
        if re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", text):
            hint = f" (a unit is required: {text.strip()}s means seconds)"
        raise ValueError(
            f"{text!r} is not a duration: write a number with a unit, "
            f"e.g. {DURATION_EXAMPLES}{hint}"
        )
    number, unit = match.groups()
    seconds = float(number) * UNIT_SECONDS[unit]
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a finite duration")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest way to write `seconds` that parse_duration reads back exactly."""
    for unit in ("h", "m", "s"):
        count = seconds / UNIT_SECONDS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    if seconds >= 1:
        return f"{seconds:g}s"
    milliseconds = seconds * 1000
    if milliseconds == int(milliseconds):
        return f"{int(milliseconds)}ms"
    return f"{seconds:g}s"
