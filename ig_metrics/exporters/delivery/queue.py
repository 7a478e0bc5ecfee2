"""The bounded queue of a delta exporter: the intervals not delivered yet, as
encoded OTLP requests, oldest first; optionally one file per interval in a
directory, so that an ig-metrics restarted during an outage still sends them."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ig_metrics.config.fields import Field, Section
from ig_metrics.config.quantities import DirectoryKind, IntKind, SizeKind

log = logging.getLogger("ig_metrics.exporters")

MAGIC = b"ig-metrics queue 1\n"
SUFFIX = ".batch"
LOCK_NAME = ".lock"

DEFAULT_QUEUE_BATCHES = 360      # an hour of 10 s delta intervals

DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Where a delta exporter keeps the intervals it could not send yet (`queue:`)."""

    max_batches: int = DEFAULT_QUEUE_BATCHES
    max_bytes: int = DEFAULT_QUEUE_BYTES
    dir: Path | None = None                    # None: in memory only

    def as_written(self) -> dict[str, Any]:
        written: dict[str, Any] = {"max_batches": self.max_batches,
                                   "max_bytes": self.max_bytes}
        if self.dir is not None:
            written["dir"] = str(self.dir)
        return written


QUEUE_DOC = ("With temporality: delta, the intervals not delivered yet, sent oldest first "
             "once the collector is back.")


def queue_field(doc: str = QUEUE_DOC) -> Field:
    return Field("queue", Section((
        Field("max_batches", IntKind(1),
              "The most intervals kept while the collector cannot be reached; then the "
              "oldest is dropped and counted (reason queue_full).",
              360, default=DEFAULT_QUEUE_BATCHES, default_shown=DEFAULT_QUEUE_BATCHES),
        Field("max_bytes", SizeKind(),
              "The most bytes (encoded OTLP) those intervals may take; then the oldest "
              "is dropped and counted (reason queue_full).",
              "64MiB", default=DEFAULT_QUEUE_BYTES, default_shown="64MiB"),
        Field("dir", DirectoryKind(),
              "Keep the queue in this directory (a subdirectory per exporter, created if "
              "missing) so that an ig-metrics restarted during an outage still delivers "
              "it; relative to this YAML file. Default: in memory only.",
              "/var/lib/ig-metrics/queue"),
    ), owner="queue"),
        doc,
        {"max_batches": 360, "dir": "/var/lib/ig-metrics/queue"})


class QueueDirectoryError(Exception):
    """The queue directory cannot be used; the message says why."""


@dataclass
class Batch:
    """One interval of a delta exporter: encoded requests, sent in order."""

    created_ns: int                  # when the kernel was read
    points: int
    requests: list[bytes]
    path: Path | None = None         # its file, when the queue is persisted
    sent: int = 0                    # requests already delivered
    points_per_request: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(request) for request in self.requests)

    @property
    def unsent_points(self) -> int:
        if not self.points_per_request:
            return self.points
        return sum(self.points_per_request[self.sent:])


Dropped = Callable[[Batch, str], None]      # (batch, reason) -> counts it


class BatchQueue:
    """At most `max_batches` batches and `max_bytes` bytes; pushing past either
    drops the oldest (reported through `on_drop` with reason queue_full)."""

    def __init__(self, settings: QueueSettings, directory: Path | None, on_drop: Dropped) -> None:
        self.settings = settings
        self.directory = directory
        self.on_drop = on_drop
        self._batches: deque[Batch] = deque()
        self._bytes = 0
        self._lock_file: int | None = None
        self._sequence = 0

    # --- persistence -------------------------------------------------------------
    def open(self) -> int:
        """Take the directory (created 0700 if missing, locked against a second
        ig-metrics) and load the batches a previous run left; returns their number."""
        if self.directory is None:
            return 0
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise QueueDirectoryError(f"cannot use {self.directory}: "
                                      f"{error.strerror or error}") from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise QueueDirectoryError(
                    f"{self.directory} is in use by another running ig-metrics; give "
                    "each its own queue.dir") from error
            raise QueueDirectoryError(f"cannot lock {self.directory}: {error}") from error
        self._lock_file = descriptor
        loaded = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            batch = _read_batch(path)
            if batch is None:
                continue
            self._append(batch)
            loaded += 1
        self._sequence = loaded
        self._enforce_bounds()
        return loaded

    def close(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)        # releases the lock
            self._lock_file = None

    # --- the queue ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._batches)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def points(self) -> int:
        return sum(batch.unsent_points for batch in self._batches)

    def head(self) -> Batch | None:
        return self._batches[0] if self._batches else None

    def push(self, batch: Batch) -> None:
        if self.directory is not None and self._lock_file is not None:
            self._sequence += 1
            batch.path = self.directory / f"{batch.created_ns:020d}-{self._sequence:08d}{SUFFIX}"
            _write_batch(batch)
        self._append(batch)
        self._enforce_bounds()

    def progress(self, batch: Batch, sent: int) -> None:
        """`sent` requests of the head batch are delivered: a restart resends only
        the rest."""
        self._bytes -= sum(len(request) for request in batch.requests[batch.sent:sent])
        batch.sent = sent
        if batch.path is not None and sent < len(batch.requests):
            _write_batch(batch)

    def pop(self) -> Batch:
        """The head batch is delivered (or given up): forget it."""
        batch = self._batches.popleft()
        self._bytes -= sum(len(request) for request in batch.requests[batch.sent:])
        if batch.path is not None:
            batch.path.unlink(missing_ok=True)
        return batch

    def drop_head(self, reason: str) -> None:
        self.on_drop(self.pop(), reason)

    def _append(self, batch: Batch) -> None:
        self._batches.append(batch)
        self._bytes += sum(len(request) for request in batch.requests[batch.sent:])

    def _enforce_bounds(self) -> None:
        # The newest batch always stays, even alone over max_bytes: dropping it
        # would lose the interval just read for nothing older.
        while len(self._batches) > 1 and (len(self._batches) > self.settings.max_batches
                                          or self._bytes > self.settings.max_bytes):
            self.drop_head("queue_full")


def _write_batch(batch: Batch) -> None:
    """Whole or not at all: written beside, synced, then renamed over."""
    assert batch.path is not None
    header = json.dumps({"created_ns": batch.created_ns, "points": batch.points,
                         "points_per_request": batch.points_per_request[batch.sent:]})
    temporary = batch.path.with_suffix(".tmp")
    with open(temporary, "wb", opener=lambda path, flags: os.open(path, flags, 0o600)) as out:
        out.write(MAGIC + header.encode() + b"\n")
        for request in batch.requests[batch.sent:]:
            out.write(len(request).to_bytes(8, "little"))
            out.write(request)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, batch.path)


def _read_batch(path: Path) -> Batch | None:
    try:
        data = path.read_bytes()
        if not data.startswith(MAGIC):
            raise ValueError("not a queue file")
        header_end = data.index(b"\n", len(MAGIC))
        header = json.loads(data[len(MAGIC):header_end])
        requests, offset = [], header_end + 1
        while offset < len(data):
            size = int.from_bytes(data[offset:offset + 8], "little")
            if offset + 8 + size > len(data):
                raise ValueError("truncated")
            requests.append(data[offset + 8:offset + 8 + size])
            offset += 8 + size
        return Batch(int(header["created_ns"]), int(header["points"]), requests, path,
                     points_per_request=list(header.get("points_per_request", [])))
    except (OSError, ValueError, KeyError) as error:
        # A file cut short by a crash or written by something else: set it aside
        # (never sent, never deleted) and say so, rather than stop the exporter.
        # Only file names in messages: queue.dir may have come from the environment.
        aside = path.with_suffix(".corrupt")
        reason = error.strerror if isinstance(error, OSError) else error
        log.warning("queue file %s is unreadable (%s); moved aside as %s", path.name, reason,
                    aside.name)
        try:
            path.rename(aside)
        except OSError as rename_error:
            log.warning("cannot move queue file %s aside: %s", path.name, rename_error.strerror)
        return None


