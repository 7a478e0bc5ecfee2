"""Key decoders, one behaviour each, on raw values as the kernel writes them."""

from __future__ import annotations

import ipaddress

from ig_metrics.gadgets.decoders import DECODERS
from ig_metrics.gadgets.spec import AttributeSpec


class Context:
    """Stands in for a running gadget's name lookups."""

    def command_of(self, pid: int) -> str:
        return {42: "nginx"}.get(pid, "")


def decode(name: str, value, fields=None, **spec):
    attribute = AttributeSpec("a", "f", name, **spec)
    return DECODERS[name](value, fields or {}, attribute, Context())


def test_inet_ip_by_family():
    v4 = ipaddress.IPv4Address("10.1.2.3").packed + bytes(12)
    v6 = ipaddress.IPv6Address("2001:db8::7").packed
    mapped = ipaddress.IPv6Address("::ffff:192.0.2.9").packed
    assert decode("inet_ip", v4, {"fam": 4}, family_field="fam") == "10.1.2.3"
    assert decode("inet_ip", v6, {"fam": 6}, family_field="fam") == "2001:db8::7"
    assert decode("inet_ip", mapped, {"fam": 6}, family_field="fam") == "192.0.2.9"
    assert decode("inet_ip", bytes(16), {"fam": 0}, family_field="fam") == ""


def test_enum_names_known_values_and_keeps_unknown_ones():
    assert decode("enum", 1, values=((1, "outbound"),)) == "outbound"
    assert decode("enum", 9, values=((1, "outbound"),)) == "9"


def test_comm_and_int():
    assert decode("comm", 42) == "nginx"
    assert decode("comm", 0) == ""
    assert decode("int", 8080) == 8080
