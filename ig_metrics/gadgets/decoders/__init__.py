"""Key decoders: how one field of a kernel key becomes an attribute value, or
several attributes (an expanding decoder: a cgroup id becomes the container's
and pod's names). Each is a small function in its own module, registered here
by name; a gadget spec names the decoder of each attribute. Adding one is a
module and a line (two for an expanding one: the names it may yield)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ig_metrics.gadgets.decoders.cgroup import ALL_PARTS, CGROUP_PARTS, decode_cgroup
from ig_metrics.gadgets.decoders.comm import decode_comm
from ig_metrics.gadgets.decoders.device import decode_device
from ig_metrics.gadgets.decoders.dns_qtype import decode_dns_qtype
from ig_metrics.gadgets.decoders.errno import decode_errno
from ig_metrics.gadgets.decoders.inet_ip import decode_inet_ip
from ig_metrics.gadgets.decoders.numbers import decode_enum, decode_int
from ig_metrics.gadgets.decoders.peer_pod import PEER_POD_NAMES, decode_peer_pod
from ig_metrics.gadgets.decoders.string import decode_string
from ig_metrics.gadgets.decoders.syscall import decode_syscall
from ig_metrics.model.snapshot import Attributes, AttrValue


class DecodeContext(Protocol):
    """What decoders may ask of the running gadget."""

    def command_of(self, pid: int) -> str:
        """The process name of `pid` as the kernel recorded it, or ''."""

    def container_attributes(self, cgroup_id: int, part: str) -> Attributes:
        """The container and pod of a cgroup id (`part`: see CGROUP_PARTS)."""

    def peer_attributes(self, address: str) -> Attributes:
        """The pod whose IP `address` is, as peer attributes; () for none."""


# (field value, all fields of the key, the attribute's spec, context) -> value;
# an expanding decoder returns (name, value) pairs instead of a value.
Decoder = Callable[[object, Mapping[str, object], object, DecodeContext],
                   AttrValue | Attributes]

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
    "cgroup": decode_cgroup,
    "peer_pod": decode_peer_pod,
}


@dataclass(frozen=True)
class Expansion:
    """What an expanding decoder may yield (docs, attribute selection)."""

    parts: Mapping[str, tuple[str, ...]]   # a `part` -> its names; the first is the default
    when: str                              # when a series has them, for the catalog

    def names(self, part: str = "") -> tuple[str, ...]:
        """The names `part` ("": the default) may yield; '*' ends a prefix."""
        return self.parts[part or next(iter(self.parts))]


EXPANDING: dict[str, Expansion] = {
    "cgroup": Expansion(CGROUP_PARTS, "for a process in a container: container.id, "
                        "container.runtime.name and k8s.pod.uid from its cgroup, the "
                        "others from the Kubernetes API (docs/kubernetes.md)"),
    "peer_pod": Expansion({ALL_PARTS: PEER_POD_NAMES}, "when the peer address is a pod's "
                          "IP, from the Kubernetes API (docs/kubernetes.md)"),
}
