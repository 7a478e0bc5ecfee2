"""Reading BPF maps in bulk: one batch syscall fills preallocated buffers with
raw keys and values, which the sampler decodes. bcc's own batch helpers
allocate max_entries arrays on every call and yield ctypes objects one by one."""

from __future__ import annotations

import ctypes as ct
import errno
import functools
import mmap
import os
from dataclasses import dataclass
from pathlib import Path


@functools.cache
def _lib():
    """libbcc, its batch calls typed; imported on first use, so that importing
    this module costs nothing (bcc's import takes ~0.2 s, and doctor runs where
    bcc is missing)."""
    from bcc import libbcc

    lib = libbcc.lib
    lib.bpf_lookup_batch.restype = ct.c_int
    lib.bpf_lookup_batch.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_void_p,
                                     ct.c_void_p, ct.POINTER(ct.c_uint32)]
    lib.bpf_lookup_and_delete_batch.restype = ct.c_int
    lib.bpf_lookup_and_delete_batch.argtypes = lib.bpf_lookup_batch.argtypes
    lib.bpf_lookup_and_delete.restype = ct.c_int
    lib.bpf_lookup_and_delete.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]
    lib.bpf_delete_elem.restype = ct.c_int
    lib.bpf_delete_elem.argtypes = [ct.c_int, ct.c_void_p]
    lib.bpf_lookup_elem.restype = ct.c_int
    lib.bpf_lookup_elem.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]
    lib.bpf_get_next_key.restype = ct.c_int
    lib.bpf_get_next_key.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]
    lib.bpf_obj_get_info.restype = ct.c_int
    lib.bpf_obj_get_info.argtypes = [ct.c_int, ct.c_void_p, ct.POINTER(ct.c_uint32)]
    return lib


def possible_cpus(path: Path = Path("/sys/devices/system/cpu/possible")) -> int:
    """How many CPUs the kernel may bring online ("0-3,6" lists 5): the slots
    of a per-CPU map's value, as bcc.utils.get_possible_cpus counts them."""
    count = 0
    for part in path.read_text().strip().split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


POSSIBLE_CPUS = possible_cpus()


class _Buffer:
    """`size` zero bytes whose pages take memory only once written: a batch read
    fills only as much as the map holds, and a map sized for 16k entries that
    holds 100 should not cost the process 16k entries of memory. The pages a
    burst had the kernel write stay resident once the map holds few entries
    again (a burst of 3,000 processes left ~4 MB in the tcp gadget's histogram
    buffers), so those past what the map fills now are given back once that
    shrank to less than half of what was written."""

    __slots__ = ("_map", "array", "_written")

    def __init__(self, size: int) -> None:
        # Private: the pages of a shared anonymous mapping are shared memory,
        # which MADV_DONTNEED only unmaps and does not free.
        self._map = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.array = (ct.c_char * size).from_buffer(self._map)
        self._written = 0           # bytes from the start that may be resident

    def filled(self, length: int) -> None:
        """The first `length` bytes hold what the last read wrote."""
        keep = -(-length // mmap.PAGESIZE) * mmap.PAGESIZE
        if self._written - keep >= max(keep, GIVE_BACK_AT_LEAST):
            # Zero-fill pages from now on: reading them again costs a fault each.
            self._map.madvise(mmap.MADV_DONTNEED, keep, self._written - keep)
            self._written = keep
        self._written = max(self._written, length)


GIVE_BACK_AT_LEAST = 64 * 1024      # below this, a read's shrink is not worth a syscall


class MapReadError(OSError):
    """A map operation the kernel refused."""


# What a kernel answers for a map operation it does not have for this map
# type: batch lookups of per-CPU arrays on Linux 5.10 say ENOTSUPP (524,
# a kernel-internal code), lookup-and-delete of one hash key before 5.14 EINVAL.
UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.ENOSYS, 524}


@dataclass(frozen=True, slots=True)
class Batch:
    """Raw content of a map: `count` keys of `key_size` bytes and values of
    `value_size` bytes (for per-CPU maps: POSSIBLE_CPUS slots of `cpu_stride`)."""

    keys: bytes
    values: bytes
    count: int
    key_size: int
    value_size: int
    cpu_stride: int                 # 0 for maps that are not per-CPU

    def key(self, index: int) -> bytes:
        return self.keys[index * self.key_size:(index + 1) * self.key_size]

    def value(self, index: int) -> bytes:
        return self.values[index * self.value_size:(index + 1) * self.value_size]


class MapReader:
    """Bulk access to one bcc table, with buffers allocated once."""

    def __init__(self, table, name: str) -> None:
        self.table = table
        self.fd = table.get_fd()
        self.name = name
        self.key_size = ct.sizeof(table.Key)
        # bcc's per-CPU tables already present Leaf as an array over possible CPUs.
        self.value_size = ct.sizeof(table.Leaf)
        self.per_cpu = hasattr(table, "total_cpu")
        self.cpu_stride = self.value_size // POSSIBLE_CPUS if self.per_cpu else 0
        self.max_entries = table.max_entries
        self._keys = _Buffer(self.key_size * self.max_entries)
        self._values = _Buffer(self.value_size * self.max_entries)
        # Whether this kernel has batch reads and one-key lookup-and-delete for
        # this map: None until first tried, then kept.
        self.batches: bool | None = None
        self.takes: bool | None = None

    def read(self, delete: bool = False) -> Batch:
        """Every entry (and, with delete=True, atomically remove each one read).
        Where the kernel has no batch reads for the map, it reads key by key."""
        if self.batches is not False:
            try:
                total = self._read_batches(delete)
            except MapReadError as error:
                if self.batches or error.errno not in UNSUPPORTED:
                    raise
                self.batches = False
            else:
                self.batches = True
        if self.batches is False:
            total = self._read_each(delete)
        # string_at copies only what was read (.raw would copy the whole buffer).
        batch = Batch(ct.string_at(self._keys.array, total * self.key_size),
                      ct.string_at(self._values.array, total * self.value_size),
                      total, self.key_size, self.value_size, self.cpu_stride)
        self._keys.filled(total * self.key_size)
        self._values.filled(total * self.value_size)
        return batch

    def _read_batches(self, delete: bool) -> int:
        call = _lib().bpf_lookup_and_delete_batch if delete else _lib().bpf_lookup_batch
        token = ct.c_uint64(0)
        total = 0
        first = True
        while total < self.max_entries:
            count = ct.c_uint32(self.max_entries - total)
            result = call(self.fd, None if first else ct.byref(token), ct.byref(token),
                          ct.byref(self._keys.array, total * self.key_size),
                          ct.byref(self._values.array, total * self.value_size),
                          ct.byref(count))
            error = ct.get_errno()
            total += count.value
            first = False
            if result == 0:
                if count.value == 0:
                    break
                continue
            if error == errno.ENOENT:       # no more entries: the normal end
                break
            raise MapReadError(error, f"reading map {self.name}: {_describe(error)}")
        return total

    def _read_each(self, delete: bool) -> int:
        """What _read_batches does, one key at a time (a syscall or two per
        entry). Taking entries always takes the first key left, as a deleted
        key cannot lead to the next; reading follows the keys' chain."""
        lib = _lib()

        def key_at(index: int):
            return ct.byref(self._keys.array, index * self.key_size)

        total = 0
        while total < self.max_entries:
            previous = None if delete or total == 0 else key_at(total - 1)
            if lib.bpf_get_next_key(self.fd, previous, key_at(total)) != 0:
                error = ct.get_errno()
                if error == errno.ENOENT:
                    break
                raise MapReadError(error, f"reading map {self.name}: {_describe(error)}")
            value = ct.byref(self._values.array, total * self.value_size)
            if delete:
                found = self._take_into(key_at(total), value)
            else:
                found = lib.bpf_lookup_elem(self.fd, key_at(total), value) == 0
            total += found
        return total

    def lookup(self, key: bytes) -> bytes | None:
        value = ct.create_string_buffer(self.value_size)
        if _lib().bpf_lookup_elem(self.fd, key, value) != 0:
            return None
        return value.raw

    def take(self, key: bytes) -> bytes | None:
        """Remove `key` and return the value it had (None if absent): at once
        where the kernel can (Linux 5.14+ for hashes), else looked up, then
        deleted, so that an event in between (microseconds) goes uncounted."""
        value = ct.create_string_buffer(self.value_size)
        return value.raw if self._take_into(key, value) else None

    def _take_into(self, key, value) -> bool:
        lib = _lib()
        if self.takes is not False:
            if lib.bpf_lookup_and_delete(self.fd, key, value) == 0:
                self.takes = True
                return True
            error = ct.get_errno()
            if error == errno.ENOENT:
                return False
            if self.takes or error not in UNSUPPORTED:
                raise MapReadError(error, f"removing a key of map {self.name}: "
                                          f"{_describe(error)}")
            self.takes = False
        if lib.bpf_lookup_elem(self.fd, key, value) != 0:
            return False
        lib.bpf_delete_elem(self.fd, key)
        return True

    def delete(self, key: bytes) -> bool:
        return _lib().bpf_delete_elem(self.fd, key) == 0


def _describe(error: int) -> str:
    return "operation not supported by this kernel" if error == 524 else os.strerror(error)


def object_info(fd: int, info: ct.Structure) -> bool:
    """Fill `info` (a bpf_*_info structure) for the BPF object behind `fd`."""
    size = ct.c_uint32(ct.sizeof(info))
    return _lib().bpf_obj_get_info(fd, ct.byref(info), ct.byref(size)) == 0
