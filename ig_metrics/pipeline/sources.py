"""Readers for the three kinds of place a gadget keeps its counts in the kernel
(see `sources:` in a gadget.yaml), each turning raw map content into plain
Python data keyed by the series key's raw bytes. A counters or histogram
source may be an array indexed by one field of the series key (`index_field`);
a gadget whose parameters make that map a hash (keyed by the whole series
key) is read as one."""

from __future__ import annotations

import ctypes as ct
import mmap
import struct
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from ig_metrics.bpf.maps import POSSIBLE_CPUS, MapReader
from ig_metrics.gadgets.spec import SourceSpec

Values = tuple[int, ...]          # counter values in the sampler's field order
Decoded = TypeVar("Decoded")      # what a ReadCache's entries decode to


class SourceLayoutError(Exception):
    """A gadget spec that names fields its C structs do not have."""


def _field(struct_type, name: str, where: str):
    descriptor = getattr(struct_type, name, None)
    if descriptor is None or not hasattr(descriptor, "offset"):
        fields = ", ".join(entry[0] for entry in getattr(struct_type, "_fields_", ()))
        raise SourceLayoutError(f"{where}: no field '{name}' (fields: {fields})")
    return descriptor


def _table(program, name: str):
    """The program's map `name`; a spec naming a map the C does not define is
    the gadget author's mistake, told as such."""
    if not program.has_table(name):
        raise SourceLayoutError(f"source {name}: the BPF program defines no map named "
                                f"'{name}'")
    return program.table(name)


def _is_u64(struct_type, name: str) -> bool:
    return dict(struct_type._fields_)[name] in (ct.c_uint64, ct.c_ulong, ct.c_ulonglong)


def _is_array(table) -> bool:
    from bcc.table import ArrayBase  # bcc only once a program is loaded

    return isinstance(table, ArrayBase)


def index_key_type(field: str):
    """The series key of a gadget whose every source is an array: the index."""
    return type("IndexKey", (ct.Structure,), {"_fields_": [(field, ct.c_uint32)]})


def index_series_key(key_type, field: str, where: str) -> Callable[[int], bytes]:
    """index -> the raw series key with `field` set to it and the rest zero."""
    _field(key_type, field, where)

    def series_key(index: int) -> bytes:
        key = key_type()
        setattr(key, field, index)
        return bytes(key)
    return series_key


def _rows(buffer, size: int) -> np.ndarray:
    """A buffer of `size`-byte entries as one row per entry (of u64 words when
    the entries are whole words), without copying it."""
    if size % 8 == 0:
        return np.frombuffer(buffer, dtype="<u8").reshape(-1, size // 8)
    return np.frombuffer(buffer, dtype=np.uint8).reshape(-1, size)


def changed_entries(old: bytes, new: bytes, size: int) -> list[int]:
    """Indexes of the `size`-byte entries that differ between two buffers of
    the same length: one comparison of the buffers as arrays, in C (a few
    milliseconds for 100,000 per-CPU entries, however many changed)."""
    if not new:
        return []
    return np.flatnonzero((_rows(old, size) != _rows(new, size)).any(axis=1)).tolist()


_LOW = np.uint64(0xFFFF_FFFF)
_HALF = np.uint64(32)


def exact_sums(words: np.ndarray) -> list[list[int]]:
    """words[entry, cpu, field] (u64) summed over the CPUs, exactly, as lists
    of Python ints: u64 arithmetic wraps at 2**64, so the high and low 32-bit
    halves are summed apart (neither can wrap below 2**32 CPUs) and the few
    sums that do not fit in 64 bits are put together by Python."""
    cpus = words.shape[1]
    if cpus == 1:
        return words[:, 0, :].tolist()
    total = words.sum(axis=1, dtype=np.uint64)
    if not words.size or int(words.max()) < (1 << 64) // cpus:
        return total.tolist()       # no sum reaches 2**64: none wrapped (the usual case)
    high = (words >> _HALF).sum(axis=1, dtype=np.uint64)
    low = (words & _LOW).sum(axis=1, dtype=np.uint64)
    rows = total.tolist()
    for entry, column in zip(*np.nonzero((high + (low >> _HALF)) >> _HALF)):
        rows[entry][column] = (int(high[entry, column]) << 32) + int(low[entry, column])
    return rows


def per_cpu_words(buffer, indexes: list[int], size: int, stride: int) -> np.ndarray:
    """The u64 words of the `size`-byte entries at `indexes` as
    [entry, cpu, word] (one CPU when stride is 0: not a per-CPU map)."""
    rows = _rows(buffer, size)
    if len(indexes) != len(rows):
        rows = rows[indexes]
    if not stride or POSSIBLE_CPUS == 1:
        return rows.reshape(len(rows), 1, size // 8)
    return rows.reshape(len(rows), POSSIBLE_CPUS, stride // 8)


class ReadCache(Generic[Decoded]):
    """One map's previous read (its raw buffers) and what each key's value
    decoded to: an entry whose bytes did not change is not decoded (its
    per-CPU copies summed) again, and keeps its decoded object, which lets the
    sampler tell unchanged series by identity. Which entries changed is found
    on the whole buffers at once, by numpy: when the keys are where they were
    (no entry came or went) by comparing the two buffers, otherwise by
    comparing each key's value with where that key was before."""

    def __init__(self) -> None:
        self._keys = self._values = b""
        self._size = 0
        self._key_list: list[bytes] = []        # the keys, in the buffers' order
        self._decoded_list: list[Decoded] = []   # what each decoded to, in that order

    def decode_all(self, batch, decode: Callable[[bytes, int], Decoded],
                   decode_many: Callable[[bytes, list[int]], list[Decoded]] | None = None
                   ) -> dict[bytes, Decoded]:
        """Key -> decoded value of every entry of `batch`; decode(values,
        offset) decodes one entry's value, decode_many(values, indexes) the
        values of the entries at `indexes` at once (optional); they are called
        only for entries that changed."""
        size = batch.value_size
        if decode_many is None:
            def decode_many(values: bytes, indexes: list[int]) -> list[Decoded]:
                return [decode(values, index * size) for index in indexes]
        if batch.keys == self._keys and size == self._size:
            key_list, decoded_list = self._key_list, self._decoded_list
            changed = changed_entries(self._values, batch.values, size)
        else:
            key_list, decoded_list, changed = self._moved(batch)
        if len(changed) == batch.count:
            decoded_list = decode_many(batch.values, changed) if changed else []
        elif changed:
            decoded_list = list(decoded_list)        # the last read's stays as it was
            for index, value in zip(changed, decode_many(batch.values, changed)):
                decoded_list[index] = value
        self._keys, self._values, self._size = batch.keys, batch.values, size
        self._key_list, self._decoded_list = key_list, decoded_list
        return dict(zip(key_list, decoded_list))

    def _moved(self, batch) -> tuple[list[bytes], list[Any], list[int]]:
        """Entries came or went: each key's value compared with where the key
        was before. The keys, what is known of their decoded values, and the
        indexes of those to decode."""
        size, key_size, keys = batch.value_size, batch.key_size, batch.keys
        key_list = [keys[start:start + key_size] for start in range(0, len(keys), key_size)]
        decoded_list: list[Any] = [None] * batch.count       # None: to decode
        if size != self._size or not self._key_list:
            return key_list, decoded_list, list(range(batch.count))
        where = dict(zip(self._key_list, range(len(self._key_list))))
        old_index = np.array([where.get(key, -1) for key in key_list], dtype=np.int64)
        known = np.flatnonzero(old_index >= 0)
        same = np.zeros(batch.count, dtype=bool)
        same[known] = (_rows(batch.values, size)[known]
                       == _rows(self._values, size)[old_index[known]]).all(axis=1)
        previous = self._decoded_list
        for index, old in zip(np.flatnonzero(same).tolist(), old_index[same].tolist()):
            decoded_list[index] = previous[old]
        return key_list, decoded_list, np.flatnonzero(~same).tolist()


class ValueLayout:
    """Where the counter fields sit in a value struct: a struct.Struct that
    unpacks them in the sampler's field order (absent fields read as 0)."""

    def __init__(self, struct_type, fields: tuple[str, ...], where: str) -> None:
        self.positions: list[int] = []           # index in `fields` of each unpacked value
        layout = []
        for index, name in enumerate(fields):
            descriptor = getattr(struct_type, name, None)
            if descriptor is None:
                continue
            if not _is_u64(struct_type, name):
                raise SourceLayoutError(f"{where}: counter field '{name}' must be a u64")
            layout.append((descriptor.offset, index))
        layout.sort()
        self._offsets = [offset for offset, _ in layout]     # of each unpacked value
        fmt, cursor = "<", 0
        for offset, index in layout:
            fmt += f"{offset - cursor}xQ" if offset > cursor else "Q"
            cursor = offset + 8
            self.positions.append(index)
        self.unpack = struct.Struct(fmt).unpack_from
        self.width = len(fields)
        self.present = frozenset(fields[index] for index in self.positions)
        self._fmt, self._size = fmt[1:], cursor
        self._per_cpu: dict[int, Callable] = {}
        # The fields as u64 words of the value (None if one is not word-aligned).
        self._words = [offset // 8 for offset, _ in layout] \
            if all(offset % 8 == 0 for offset, _ in layout) else None

    def columns(self, rows: np.ndarray) -> list[list[int]]:
        """values() of every row (bytes) of `rows`, at once."""
        out = np.zeros((len(rows), self.width), dtype=np.uint64)
        for offset, position in zip(self._offsets, self.positions):
            out[:, position] = _u64_column(rows, offset)
        return out.tolist()

    def values(self, buffer, offset: int = 0) -> list[int]:
        out = [0] * self.width
        for position, value in zip(self.positions, self.unpack(buffer, offset)):
            out[position] = value
        return out

    def summed(self, buffer, offset: int, stride: int) -> list[int]:
        """The values of a per-CPU entry (POSSIBLE_CPUS copies `stride` bytes
        apart, stride 0: not per-CPU), summed over the CPUs: one unpack."""
        if not stride or POSSIBLE_CPUS == 1:
            return self.values(buffer, offset)
        unpack = self._per_cpu.get(stride)
        if unpack is None:
            gap = f"{stride - self._size}x" if stride > self._size else ""
            unpack = self._per_cpu[stride] = struct.Struct(
                "<" + (self._fmt + gap) * (POSSIBLE_CPUS - 1) + self._fmt).unpack_from
        raw = unpack(buffer, offset)
        count = len(self.positions)
        out = [0] * self.width
        for slot, position in enumerate(self.positions):
            out[position] = sum(raw[slot::count])
        return out

    def summed_many(self, buffer, indexes: list[int], size: int, stride: int) -> list[list[int]]:
        """summed() of the `size`-byte entries at `indexes`, all at once."""
        if self._words is None or size % 8 or stride % 8:
            return [self.summed(buffer, index * size, stride) for index in indexes]
        words = per_cpu_words(buffer, indexes, size, stride)
        placed = np.zeros((len(indexes), words.shape[1], self.width), dtype=np.uint64)
        placed[:, :, self.positions] = words[:, :, self._words]
        return exact_sums(placed)


class SlotRecord(NamedTuple):
    """One slot as read: its id, the series key it counts for, its counts."""

    id: int
    key: bytes
    values: list[int]


def _u64_column(rows: np.ndarray, offset: int) -> np.ndarray:
    """The little-endian u64 at `offset` of every row (bytes) of `rows`."""
    return rows[:, offset:offset + 8].copy().view("<u8")[:, 0]


class SlotsSource:
    """An array of objects (e.g. sockets) that carry their own series key.
    Read in place through mmap when the map allows it."""

    def __init__(self, spec: SourceSpec, program, fields: tuple[str, ...], key_size: int) -> None:
        table = _table(program, spec.map)
        leaf = table.Leaf
        where = f"source {spec.map}"
        self.spec = spec
        self.slot_size = ct.sizeof(leaf)
        self.slots = table.max_entries
        key_descriptor = _field(leaf, spec.key_field, where)
        if key_descriptor.size != key_size:
            raise SourceLayoutError(f"{where}: field '{spec.key_field}' is {key_descriptor.size} "
                                    f"bytes, the series key is {key_size}")
        self.key_offset = key_descriptor.offset
        self.key_size = key_size
        self.valid_offset = _field(leaf, spec.valid_field, where).offset
        self.first_offset = _field(leaf, spec.first_field, where).offset if spec.first_field else -1
        self.last_offset = _field(leaf, spec.last_field, where).offset if spec.last_field else -1
        # (offset in the slot, offset in the key, size): slot fields that
        # override the key's (its process and cgroup are its owner's).
        key_type = dict(leaf._fields_)[spec.key_field]
        self.overrides = tuple(
            (_field(leaf, slot_field, where).offset,
             _field(key_type, key_field, f"{where}.{spec.key_field}").offset, size)
            for slot_field, key_field, size in ((spec.pid_field, "pid", 4),
                                                (spec.cgroup_field, "cgroup_id", 8))
            if slot_field)
        self.values = ValueLayout(leaf, fields, where)
        if self.slot_size % 8 or self.valid_offset % 8:
            raise SourceLayoutError(f"{where}: slots must be 8-byte aligned with an 8-byte "
                                    f"'{spec.valid_field}'")
        self._mmap = self._map(table)
        self._reader = None if self._mmap else MapReader(table, spec.map)
        self.retired = MapReader(_table(program, spec.retired_into), spec.retired_into) \
            if spec.retired_into else None
        if self.retired is not None and self.retired.value_size != self.slot_size:
            raise SourceLayoutError(f"{where}: map {spec.retired_into} must hold the slots' "
                                    f"struct ({self.retired.value_size} bytes, a slot is "
                                    f"{self.slot_size})")
        self.capacity = self.slots
        self.entries = 0                 # slots in use at the last read (map fill)

    def _map(self, table) -> mmap.mmap | None:
        try:
            return mmap.mmap(table.get_fd(), self.slot_size * self.slots,
                             mmap.MAP_SHARED, mmap.PROT_READ)
        except OSError:
            return None   # not created with BPF_F_MMAPABLE: read with a batch syscall

    def _occupied(self) -> bytes:
        """A copy of the slots in use (the table itself is only looked at,
        in place when it is mapped: 65,536 slots at 130 bytes are 8.5 MB)."""
        reader = self._reader                   # None: mapped
        table = _rows(self._mmap if reader is None else reader.read().values, self.slot_size)
        return table[table[:, self.valid_offset // 8] > 1].tobytes()

    def read(self) -> dict[int, SlotRecord]:
        """Every occupied, consistently copied slot, by id."""
        data = self._occupied()
        self.entries = len(data) // self.slot_size      # slots in use, for the fill ratio
        # 0: free, 1: being filled in (since it was found occupied)
        return {record.id: record for record in self._records(data, occupied_only=True)}

    def _records(self, data: bytes, *, occupied_only: bool) -> list[SlotRecord]:
        """The records of the slots copied in `data`, all at once (numpy: a
        Python loop over the slots' fields cost a few µs a slot at every read),
        less those reused while they were copied (id != id_end: read next
        time) and, with occupied_only, those not occupied when copied."""
        rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, self.slot_size)
        keep = np.ones(len(rows), dtype=bool)
        if occupied_only:
            keep &= _u64_column(rows, self.valid_offset) > 1
        ids = np.zeros(len(rows), dtype=np.uint64)
        if self.first_offset >= 0:
            ids = _u64_column(rows, self.first_offset)
            keep &= ids == _u64_column(rows, self.last_offset)
        if not keep.all():
            rows, ids = rows[keep], ids[keep]
        keys = rows[:, self.key_offset:self.key_offset + self.key_size].copy()
        for slot_offset, key_offset, size in self.overrides:
            keys[:, key_offset:key_offset + size] = rows[:, slot_offset:slot_offset + size]
        raw, size = keys.tobytes(), self.key_size
        make = tuple.__new__                 # SlotRecord(...) without its __new__
        return [make(SlotRecord, (record_id, raw[start:start + size], values))
                for record_id, start, values in zip(ids.tolist(), range(0, len(raw), size),
                                                    self.values.columns(rows))]

    def take_retired(self) -> list[SlotRecord]:
        """Remove and return every retired slot (the kernel never touches them again)."""
        if self.retired is None:
            return []
        return self._records(self.retired.read(delete=True).values, occupied_only=False)


class CountersSource:
    """A (per-CPU) hash keyed by the series key whose value is counters, or a
    (per-CPU) array of counters indexed by one field of the series key."""

    def __init__(self, spec: SourceSpec, program, fields: tuple[str, ...]) -> None:
        table = _table(program, spec.map)
        self.spec = spec
        self.indexed = bool(spec.index_field) and _is_array(table)
        self.reader = MapReader(table, spec.map)
        leaf = getattr(table, "sLeaf", table.Leaf)
        self.values = ValueLayout(leaf, fields, f"source {spec.map}")
        self.key_type = None if self.indexed else table.Key
        self.series_key: Callable[[int], bytes] | None = None   # arrays: set by the sampler
        self._cache: ReadCache[list[int]] = ReadCache()
        # An array is always full: its fill says nothing (None); a hash's does.
        self.capacity = None if self.indexed else self.reader.max_entries
        self.entries = 0

    def read(self) -> dict[bytes, list[int]]:
        """Series key -> its counts (summed over CPUs). An entry that did not
        change since the last read gives the same list object as then: treat
        the lists as read-only."""
        batch = self.reader.read()
        self.entries = batch.count
        stride, size, layout = batch.cpu_stride, batch.value_size, self.values
        entries = self._cache.decode_all(
            batch, lambda data, base: layout.summed(data, base, stride),
            lambda data, indexes: layout.summed_many(data, indexes, size, stride))
        if self.series_key is None:
            return entries
        # An array holds every index; a series is one that counted.
        return {self.series_key(int.from_bytes(key, "little")): values
                for key, values in entries.items() if any(values)}

    def take(self, key: bytes) -> list[int] | None:
        if self.indexed:
            return None              # array entries cannot be removed: such series stay live
        raw = self.reader.take(key)
        if raw is None:
            return None
        return self.values.summed(raw, 0, self.reader.cpu_stride)


class SlotHistogram(NamedTuple):
    """A histogram entry summed over the CPUs (a named tuple: one is made per
    changed entry per read)."""

    slots: tuple[int, ...]
    sum: int


class HistogramSource:
    """A (per-CPU) hash keyed by the series key whose value is a struct ig_hist,
    or a (per-CPU) array of them indexed by one field of the series key."""

    def __init__(self, spec: SourceSpec, program) -> None:
        table = _table(program, spec.map)
        self.spec = spec
        self.indexed = bool(spec.index_field) and _is_array(table)
        self.reader = MapReader(table, spec.map)
        leaf = getattr(table, "sLeaf", table.Leaf)
        slots = dict(leaf._fields_).get("slots")
        if slots is None or not hasattr(leaf, "sum"):
            raise SourceLayoutError(f"source {spec.map}: a histogram value must be struct ig_hist")
        self.slot_count = slots._length_
        self.unpack = struct.Struct(f"<{self.slot_count + 1}Q").unpack_from
        self.key_type = None if self.indexed else table.Key
        self.series_key: Callable[[int], bytes] | None = None   # arrays: set by the sampler
        self._cache: ReadCache[SlotHistogram] = ReadCache()
        self.capacity = None if self.indexed else self.reader.max_entries   # as for counters
        self.entries = 0

    def read(self) -> dict[bytes, SlotHistogram]:
        """Series key -> its histogram (summed over CPUs); as for counters, an
        unchanged entry gives the same object as in the last read."""
        batch = self.reader.read()
        self.entries = batch.count
        stride, size = batch.cpu_stride, batch.value_size
        entries = self._cache.decode_all(
            batch, lambda data, base: self._sum(data, base, stride),
            lambda data, indexes: self._sum_many(data, indexes, size, stride))
        if self.series_key is None:
            return entries
        return {self.series_key(int.from_bytes(key, "little")): histogram
                for key, histogram in entries.items() if any(histogram.slots)}

    def _sum(self, data: bytes, base: int, stride: int) -> SlotHistogram:
        totals = list(self.unpack(data, base))
        for cpu in range(1, POSSIBLE_CPUS if stride else 1):
            for position, value in enumerate(self.unpack(data, base + cpu * stride)):
                totals[position] += value
        return SlotHistogram(tuple(totals[:-1]), totals[-1])

    def _sum_many(self, data: bytes, indexes: list[int], size: int,
                  stride: int) -> list[SlotHistogram]:
        """_sum() of the entries at `indexes`, all at once."""
        if size % 8 or stride % 8:
            return [self._sum(data, index * size, stride) for index in indexes]
        words = per_cpu_words(data, indexes, size, stride)[:, :, :self.slot_count + 1]
        make, last = tuple.__new__, self.slot_count      # SlotHistogram(...) without its __new__
        return [make(SlotHistogram, (tuple(row[:last]), row[last])) for row in exact_sums(words)]

    def take(self, key: bytes) -> SlotHistogram | None:
        if self.indexed:
            return None              # as for counters: array series stay live
        raw = self.reader.take(key)
        if raw is None:
            return None
        return self._sum(raw, 0, self.reader.cpu_stride)
