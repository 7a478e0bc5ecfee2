"""The two caches a pod watch fills, each bounded: this node's pods by uid, and
pod IPs of the cluster to the pod that has them. A watch thread writes; any
thread reads without a lock (one dict lookup, atomic in CPython). Each store
tells an optional listener what changed (a uid, an IP; None for everything)
once the change is visible, so that attributes decoded before can be redone."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ig_metrics.k8s.podinfo import PeerPod, PodInfo, peer_pod, pod_info

log = logging.getLogger("ig_metrics.k8s")

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

# Called with the uid (PodStore) or IP (PeerIndex) that changed, None when the
# whole store was replaced; from the watch thread, after the change is visible.
ChangeListener = Callable[[str | None], None]


def no_listener(changed: str | None) -> None:
    """The listener of a store nobody listens to."""


class Store(Protocol):
    """What a reflector feeds: the whole list, then one watch event at a time."""

    def replace(self, objects: Iterable[Mapping[str, Any]]) -> None: ...

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None: ...


class PodStore:
    """Pod uid -> PodInfo for the pods of this node; at most `max_pods`."""

    def __init__(self, max_pods: int, *, include_labels: bool = False,
                 on_change: ChangeListener = no_listener) -> None:
        self.max_pods = max_pods
        self.include_labels = include_labels
        self.on_change = on_change
        self._pods: dict[str, PodInfo] = {}
        self._lock = threading.Lock()      # writers only
        self.refused = 0                   # pods not kept because the store was full

    def __len__(self) -> int:
        return len(self._pods)

    def get(self, uid: str) -> PodInfo | None:
        return self._pods.get(uid)

    def replace(self, objects: Iterable[Mapping[str, Any]]) -> None:
        pods: dict[str, PodInfo] = {}
        for obj in objects:
            if len(pods) >= self.max_pods:
                self._refuse(obj)
                continue
            info = pod_info(obj, include_labels=self.include_labels)
            pods[info.uid] = info
        with self._lock:
            self._pods = pods            # one swap: readers see the old or the new list
        self.on_change(None)

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        with self._lock:
            if event_type == DELETED:
                self._pods.pop(uid, None)
            elif uid in self._pods or len(self._pods) < self.max_pods:
                self._pods[uid] = pod_info(obj, include_labels=self.include_labels)
            else:
                self._refuse(obj)
                return
        self.on_change(uid)

    def _refuse(self, obj: Mapping[str, Any]) -> None:
        self.refused += 1
        if self.refused == 1:
            log.warning("pod cache full (%d pods): pod %s/%s and later ones get no metadata; "
                        "raise max_pods", self.max_pods, obj["metadata"].get("namespace"),
                        obj["metadata"].get("name"))


class PeerIndex:
    """Pod IP -> the running pod that has it; at most `max_pods` pods indexed."""

    def __init__(self, max_pods: int, *, on_change: ChangeListener = no_listener) -> None:
        self.max_pods = max_pods
        self.on_change = on_change
        self._by_ip: dict[str, PeerPod] = {}
        self._ips_of: dict[str, tuple[str, ...]] = {}    # pod uid -> its indexed IPs
        self._lock = threading.Lock()
        self.refused = 0

    def __len__(self) -> int:
        return len(self._ips_of)

    def get(self, ip: str) -> PeerPod | None:
        return self._by_ip.get(ip)

    def replace(self, objects: Iterable[Mapping[str, Any]]) -> None:
        by_ip: dict[str, PeerPod] = {}
        ips_of: dict[str, tuple[str, ...]] = {}
        for obj in objects:
            entry = peer_pod(obj)
            if entry is None:
                continue
            if len(ips_of) >= self.max_pods:
                self._refuse()
                continue
            peer, ips = entry
            ips_of[peer.uid] = ips
            for ip in ips:
                by_ip[ip] = peer
        with self._lock:
            self._by_ip, self._ips_of = by_ip, ips_of
        self.on_change(None)

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        entry = None if event_type == DELETED else peer_pod(obj)
        with self._lock:
            # Who held each IP this event may touch, to tell listeners only of
            # IPs that now answer differently (most events change no IP).
            touched = {ip: self._by_ip.get(ip)
                       for ip in (*self._ips_of.get(uid, ()), *(entry[1] if entry else ()))}
            self._forget(uid)
            if entry is not None and len(self._ips_of) >= self.max_pods:
                self._refuse()
            elif entry is not None:
                peer, ips = entry
                self._ips_of[uid] = ips
                for ip in ips:
                    # The newest pod to claim an IP has it: the one before has ended.
                    self._by_ip[ip] = peer
            changed = [ip for ip, holder in touched.items() if self._by_ip.get(ip) != holder]
        for ip in changed:
            self.on_change(ip)

    def _forget(self, uid: str) -> None:
        for ip in self._ips_of.pop(uid, ()):
            if (current := self._by_ip.get(ip)) is not None and current.uid == uid:
                del self._by_ip[ip]

    def _refuse(self) -> None:
        self.refused += 1
        if self.refused == 1:
            log.warning("pod IP index full (%d pods): later pods' IPs are not resolved to "
                        "peer pods; raise max_peer_pods", self.max_pods)


class Tee:
    """Feeds several stores from one watch (node pods and their IPs)."""

    def __init__(self, *stores: Store) -> None:
        self.stores = stores

    def replace(self, objects: Iterable[Mapping[str, Any]]) -> None:
        objects = list(objects)
        for store in self.stores:
            store.replace(objects)

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        for store in self.stores:
            store.apply(event_type, obj)
