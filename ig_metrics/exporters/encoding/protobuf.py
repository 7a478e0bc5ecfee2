"""Protobuf's wire framing for the encoders written by hand (otlp/wire.py,
prometheus/proto.py, remotewrite/wire.py): varints, tags, fields, and the
fields of a message read back."""

from __future__ import annotations

import struct
from collections.abc import Iterator

# Wire types: the low three bits of a tag (field number << 3 | wire type).
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5

DOUBLE = struct.Struct("<d")


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = tuple(varint(value) for value in range(1 << 14))


def length(value: int) -> bytes:
    """The varint length prefix of a length-delimited field."""
    return _SMALL_VARINTS[value] if value < 16384 else varint(value)


def zigzag(value: int) -> bytes:
    """A sint32 or sint64 as its zigzag varint."""
    return varint(value << 1 if value >= 0 else (-value << 1) - 1)


def field(number: int, body: bytes) -> bytes:
    """A length-delimited field (a string or a message)."""
    return bytes((number << 3 | LENGTH_DELIMITED,)) + length(len(body)) + body


def string_field(number: int, text: str) -> bytes:
    # proto3 leaves an empty string off the wire.
    return field(number, text.encode()) if text else b""


def varint_field(number: int, value: int) -> bytes:
    """A varint field (an integer or an enum; its wire type is 0); proto3 leaves
    0 off the wire."""
    return bytes((number << 3,)) + varint(value) if value else b""


def double_field(number: int, value: float) -> bytes:
    # proto3: a zero double is left off the wire.
    return bytes((number << 3 | FIXED64,)) + DOUBLE.pack(value) if value else b""


def delimited(message: bytes) -> bytes:
    """A message preceded by its length, as in a stream of messages."""
    return varint(len(message)) + message


def fields(data: memoryview, at: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, where the field starts, where its value starts, where it
    ends) of each field in data[at:end]; ValueError where that is not protobuf."""
    while at < end:
        start = at
        key, at = varint_at(data, at)
        wire = key & 7
        if wire == VARINT:
            _, value_end = varint_at(data, at)
        elif wire == FIXED64:
            value_end = at + 8
        elif wire == LENGTH_DELIMITED:
            size, at = varint_at(data, at)
            value_end = at + size
        elif wire == FIXED32:
            value_end = at + 4
        else:
            raise ValueError(f"wire type {wire} at byte {start}")
        if value_end > end:
            raise ValueError(f"a field past its end at byte {start}")
        yield key >> 3, start, at, value_end
        at = value_end


def varint_at(data: memoryview, at: int) -> tuple[int, int]:
    """The varint at data[at], and where it ends."""
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("cut short in a varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7
