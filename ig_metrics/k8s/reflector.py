"""List then watch pods in a thread of its own, feeding a store, as client-go's
reflector does: a watch that expires (410 Gone) is answered by a new list; a
lost connection by a retry with exponential backoff; a server that ends a watch
on its timeout, by a new watch from the last resourceVersion seen."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import Watch

from ig_metrics.k8s.podstores import ADDED, DELETED, MODIFIED, Store
from ig_metrics.retry.backoff import Backoff

log = logging.getLogger("ig_metrics.k8s")

HTTP_GONE = 410
APPLIED_EVENTS = frozenset({ADDED, MODIFIED, DELETED})
DEFAULT_PAGE_SIZE = 500
DEFAULT_WATCH_TIMEOUT = 300        # seconds the server keeps a watch open (client-go: 5-10 min)
DEFAULT_REQUEST_TIMEOUT = 30.0     # seconds for a list, and to connect
DEFAULT_BACKOFF_INITIAL = 0.5      # seconds before the first reconnection
DEFAULT_BACKOFF_MAX = 30.0
WATCH_READ_SLACK = 30              # a watch silent this long after its timeout is a dead connection
STOP_POLL = 0.05                   # seconds between two attempts to cut a watch when stopping


class Reflector:
    """Keeps `store` equal to the pods the API server has (matching
    `field_selector`), from its own daemon thread."""

    def __init__(self, name: str, list_pods: Callable[..., Any], store: Store, *,
                 field_selector: str | None = None, page_size: int = DEFAULT_PAGE_SIZE,
                 watch_timeout: int = DEFAULT_WATCH_TIMEOUT,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 backoff: Backoff | None = None) -> None:
        self.name = name
        self._list_pods = list_pods     # CoreV1Api.list_pod_for_all_namespaces
        self.store = store
        self.field_selector = field_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self.backoff = backoff or Backoff(DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX)
        self.synced = threading.Event()    # set once the first list is in the store
        self.last_error: str | None = None
        self.lists = 0                     # lists made, the first one included
        self.expired_watches = 0           # 410 Gone answered by a new list
        self.events = 0                    # watch events applied
        self._stopping = threading.Event()
        self._watch: Watch | None = None
        self._version: str | None = None   # where the store is; None: list first
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"k8s-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Ends the thread; a watch blocked on a read is cut at once."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        while self._thread is not None and self._thread.is_alive():
            # Watch.stop() shuts the socket down under the blocked read, once the
            # response has begun: a watch still connecting needs another try.
            watch = self._watch
            if watch is not None:
                watch.stop()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._thread.join(min(STOP_POLL, remaining))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        consistent = False
        while not self._stopping.is_set():
            try:
                if self._version is None:
                    self._relist(consistent)
                    consistent = False
                    self.synced.set()
                    self.last_error = None
                    self.backoff.reset()
                self._watch_until_timeout()
            except ApiException as error:
                if self._stopping.is_set():
                    break
                if error.status == HTTP_GONE:
                    # Our resourceVersion is older than the server keeps: only a
                    # new list can tell what changed meanwhile.
                    self.expired_watches += 1
                    self._version, consistent = None, True
                    log.info("pods (%s): watch expired (410 Gone); listing again", self.name)
                    continue
                self._retry_later(_describe_api_error(error))
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                if self._stopping.is_set():
                    break
                # The watch resumes from the last event applied (self._version).
                self._retry_later(f"{type(error).__name__}: {error}")
            except Exception as error:   # a bug: reported with its traceback, then retried
                if self._stopping.is_set():
                    break
                log.exception("pods (%s): unexpected error", self.name)
                self._version = None     # the store may be half updated: start over
                self._retry_later(f"{type(error).__name__}: {error}")

    def _retry_later(self, message: str) -> None:
        self.last_error = message
        delay = self.backoff.next_wait()
        log.warning("pods (%s): %s; retrying in %.1f s", self.name, message, delay)
        self._stopping.wait(delay)

    def _relist(self, consistent: bool) -> None:
        """Every matching pod, page by page, into the store, which then stands at
        the list's resourceVersion."""
        # "0" lets the API server answer from its watch cache (cheap with a
        # thousand nodes listing at once); after a 410, only the latest will do.
        options: dict[str, Any] = {} if consistent else {"resource_version": "0"}
        items: list[dict] = []
        while True:
            response = self._list_pods(field_selector=self.field_selector, limit=self.page_size,
                                       _preload_content=False,
                                       _request_timeout=self.request_timeout, **options)
            try:
                body = json.loads(response.data)
            finally:
                response.release_conn()
            items.extend(body.get("items") or ())
            following = body["metadata"].get("continue")
            if not following:
                break
            if self._stopping.is_set():
                return
            options = {"_continue": following}
        self.store.replace(items)
        self.lists += 1
        self._version = body["metadata"]["resourceVersion"]

    def _watch_until_timeout(self) -> None:
        """Apply watch events from self._version on, until the server ends the
        watch at its timeout (the caller then watches again)."""
        watch = Watch()
        self._watch = watch
        if self._stopping.is_set():        # stop() came before self._watch was set
            return
        for event in watch.stream(_untyped(self._list_pods), field_selector=self.field_selector,
                                  resource_version=self._version,
                                  timeout_seconds=self.watch_timeout, allow_watch_bookmarks=True,
                                  _request_timeout=(self.request_timeout,
                                                    self.watch_timeout + WATCH_READ_SLACK)):
            if self._stopping.is_set():
                return
            if event is None:              # a line that is not JSON: nothing to apply
                continue
            obj = event["raw_object"]
            if event["type"] in APPLIED_EVENTS:
                self.store.apply(event["type"], obj)
                self.events += 1
            self._version = obj["metadata"]["resourceVersion"]     # BOOKMARKs carry it too
            self.backoff.reset()


def _untyped(list_pods: Callable[..., Any]) -> Callable[..., Any]:
    """`list_pods` without its return type, so that Watch hands over plain dicts
    (the JSON as sent) instead of building a V1Pod model per event."""
    def list_pods_json(**kwargs):
        return list_pods(**kwargs)
    return list_pods_json


def _describe_api_error(error: ApiException) -> str:
    if error.status in (401, 403):
        return (f"the API server refused to list pods ({error.status} {error.reason}): the "
                "service account needs get, list and watch on pods (the ClusterRole of "
                "'ig-metrics deploy')")
    return f"the API server answered {error.status} {error.reason}"
