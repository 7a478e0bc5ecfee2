"""The pods of a DaemonSet, as the CLI follows them: one list, then one watch
(k8s/reflector.py, client-go's way: a watch that expires is answered by a new
list, a lost connection by a retry with backoff), not a list per refresh."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ig_metrics.cluster.api import API_TIMEOUT, Cluster, PodState, pod_state
from ig_metrics.k8s.podstores import DELETED
from ig_metrics.k8s.reflector import Reflector

STOP_TIMEOUT = 2.0


class _PodsByName:
    """The watched pods' states, by name (a reflector's store): each made once
    per change of its pod, not at every refresh."""

    def __init__(self) -> None:
        self._pods: dict[str, PodState] = {}
        self._lock = threading.Lock()

    def replace(self, objects: Iterable[Mapping[str, Any]]) -> None:
        pods = {obj["metadata"]["name"]: pod_state(dict(obj)) for obj in objects}
        with self._lock:
            self._pods = pods

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        state = None if event_type == DELETED else pod_state(dict(obj))
        with self._lock:
            if state is None:
                self._pods.pop(obj["metadata"]["name"], None)
            else:
                self._pods[obj["metadata"]["name"]] = state

    def values(self) -> list[PodState]:
        with self._lock:
            return list(self._pods.values())


class PodWatch:
    """The pods matching `selector` in `namespace`, kept current by a watch."""

    def __init__(self, cluster: Cluster, namespace: str, selector: str) -> None:
        from kubernetes import client

        self._store = _PodsByName()
        list_pods = functools.partial(client.CoreV1Api(cluster.client).list_namespaced_pod,
                                      namespace, label_selector=selector)
        self._reflector = Reflector(f"{namespace}/{selector}", list_pods, self._store,
                                    request_timeout=API_TIMEOUT)

    def start(self) -> None:
        self._reflector.start()

    def close(self) -> None:
        self._reflector.stop(STOP_TIMEOUT)

    def wait_synced(self, timeout: float) -> bool:
        """Whether the first list is in, waiting for it up to `timeout` seconds."""
        return self._reflector.synced.wait(timeout)

    @property
    def error(self) -> str | None:
        """Why the list or the watch fails now (it is retried), or None."""
        return self._reflector.last_error

    def states(self) -> list[PodState]:
        return sorted(self._store.values(), key=lambda state: (state.node, state.name))
