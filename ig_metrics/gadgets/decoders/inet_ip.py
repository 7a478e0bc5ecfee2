"""Decoder for a 16-byte address field with a family field beside it."""

from __future__ import annotations

import ipaddress

from ig_metrics.model.snapshot import AttrValue


def decode_inet_ip(value, fields, spec, ctx) -> AttrValue:
    """The textual address (family 4: the first 4 bytes; 6: all 16); an
    IPv4-mapped IPv6 address shows as the IPv4 address it carries; '' when the
    address is unknown (all zero)."""
    raw = bytes(value)
    family = int(fields[spec.family_field])
    if not any(raw):
        return ""
    if family == 4:
        return str(ipaddress.IPv4Address(raw[:4]))
    address = ipaddress.IPv6Address(raw[:16])
    return str(address.ipv4_mapped or address)
