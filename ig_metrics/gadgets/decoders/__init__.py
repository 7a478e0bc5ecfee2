"""Key decoders: how one field of a kernel key becomes an attribute value.
Each is a small function in its own module, registered here by name; a gadget
spec names the decoder of each attribute. Adding one is a module and a line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from ig_metrics.gadgets.decoders.comm import decode_comm
from ig_metrics.gadgets.decoders.device import decode_device
from ig_metrics.gadgets.decoders.dns_qtype import decode_dns_qtype
from ig_metrics.gadgets.decoders.errno import decode_errno
from ig_metrics.gadgets.decoders.inet_ip import decode_inet_ip
from ig_metrics.gadgets.decoders.numbers import decode_enum, decode_int
from ig_metrics.gadgets.decoders.string import decode_string
from ig_metrics.gadgets.decoders.syscall import decode_syscall
from ig_metrics.pipeline.snapshot import AttrValue


class DecodeContext(Protocol):
    """What decoders may ask of the running gadget."""

    def command_of(self, pid: int) -> str:
        """The process name of `pid` as the kernel recorded it, or ''."""


# (field value, all fields of the key, the attribute's spec, context) -> value
Decoder = Callable[[object, Mapping[str, object], object, DecodeContext], AttrValue]

DECODERS: dict[str, Decoder] = {
    "int": decode_int,
    "enum": decode_enum,
    "comm": decode_comm,
    "inet_ip": decode_inet_ip,
    "errno": decode_errno,
    "syscall": decode_syscall,
    "string": decode_string,
    "device": decode_device,
    "dns_qtype": decode_dns_qtype,
}
