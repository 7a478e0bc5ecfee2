"""Key decoders: how one field of a kernel key becomes an attribute value.
Each is a small function registered by name in DECODERS; a gadget spec names
the decoder of each attribute."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import ipaddress
from typing import Protocol

from ig_metrics.pipeline.snapshot import AttrValue


class DecodeContext(Protocol):
    """What decoders may ask of the running gadget."""

    def command_of(self, pid: int) -> str:
        """The process name of `pid` as the kernel recorded it, or ''."""


# (field value, all fields of the key, the attribute's spec, context) -> value
Decoder = Callable[[object, Mapping[str, object], object, DecodeContext], AttrValue]


def decode_int(value, fields, spec, ctx) -> AttrValue:
    return int(value)


def decode_comm(value, fields, spec, ctx) -> AttrValue:
    return ctx.command_of(int(value)) if value else ""


def decode_enum(value, fields, spec, ctx) -> AttrValue:
    names = dict(spec.values)
    return names.get(int(value), str(value))


def decode_inet_ip(value, fields, spec, ctx) -> AttrValue:
    """16 address bytes and a family field (4 or 6): the textual address; an
    IPv4-mapped IPv6 address is shown as the IPv4 address it carries; '' when
    the address is unknown (all zero)."""
    raw = bytes(value)
    family = int(fields[spec.family_field])
    if not any(raw):
        return ""
    if family == 4:
        return str(ipaddress.IPv4Address(raw[:4]))
    address = ipaddress.IPv6Address(raw[:16])
    return str(address.ipv4_mapped or address)


DECODERS: dict[str, Decoder] = {
    "int": decode_int,
    "comm": decode_comm,
    "enum": decode_enum,
    "inet_ip": decode_inet_ip,
}
