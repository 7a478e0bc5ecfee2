"""Decoder for a peer address (16 bytes and a family field, as inet_ip): the
pod that has that IP in the cluster, as k8s.peer.pod.name and
k8s.peer.namespace.name; none when the address is no pod's."""

from __future__ import annotations

from ig_metrics.gadgets.decoders.inet_ip import decode_inet_ip
from ig_metrics.model.semconv import PEER_NAMESPACE, PEER_POD_NAME
from ig_metrics.model.snapshot import Attributes

PEER_POD_NAMES = (PEER_POD_NAME, PEER_NAMESPACE)


def decode_peer_pod(value, fields, spec, ctx) -> Attributes:
    address = decode_inet_ip(value, fields, spec, ctx)
    return ctx.peer_attributes(address) if address else ()
