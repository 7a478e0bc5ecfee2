"""Readers for the three kinds of place a gadget keeps its counts in the kernel
(see `sources:` in a gadget.yaml), each turning raw map content into plain
Python data keyed by the series key's raw bytes. A counters or histogram
source may be an array indexed by one field of the series key (`index_field`)."""

from __future__ import annotations

import ctypes as ct
import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ig_metrics.bpf.maps import POSSIBLE_CPUS, MapReader
from ig_metrics.gadgets.spec import SourceSpec

Values = tuple[int, ...]          # counter values in the sampler's field order


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
        fmt, cursor = "<", 0
        for offset, index in layout:
            fmt += f"{offset - cursor}xQ" if offset > cursor else "Q"
            cursor = offset + 8
            self.positions.append(index)
        self.unpack = struct.Struct(fmt).unpack_from
        self.width = len(fields)
        self.present = frozenset(fields[index] for index in self.positions)

    def values(self, buffer, offset: int = 0) -> list[int]:
        out = [0] * self.width
        for position, value in zip(self.positions, self.unpack(buffer, offset)):
            out[position] = value
        return out


@dataclass(frozen=True, slots=True)
class SlotRecord:
    id: int
    key: bytes
    values: list[int]


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
        self.pid_offset = -1
        if spec.pid_field:
            self.pid_offset = _field(leaf, spec.pid_field, where).offset
            key_type = dict(leaf._fields_)[spec.key_field]
            self.key_pid_offset = _field(key_type, "pid", f"{where}.{spec.key_field}").offset
        self.values = ValueLayout(leaf, fields, where)
        if self.slot_size % 8 or self.valid_offset % 8:
            raise SourceLayoutError(f"{where}: slots must be 8-byte aligned with an 8-byte "
                                    f"'{spec.valid_field}'")
        self._mmap = self._map(table)
        self._reader = None if self._mmap else MapReader(table, spec.map)
        self.retired = MapReader(_table(program, spec.retired_into), spec.retired_into) \
            if spec.retired_into else None

    def _map(self, table) -> mmap.mmap | None:
        try:
            return mmap.mmap(table.get_fd(), self.slot_size * self.slots,
                             mmap.MAP_SHARED, mmap.PROT_READ)
        except OSError:
            return None   # not created with BPF_F_MMAPABLE: read with a batch syscall

    def _snapshot(self) -> bytes:
        if self._mmap is not None:
            return self._mmap[:]
        return self._reader.read().values

    def read(self) -> dict[int, SlotRecord]:
        """Every occupied, consistently copied slot, by id."""
        data = self._snapshot()
        stride = self.slot_size // 8
        words = memoryview(data).cast("Q")
        valid = words[self.valid_offset // 8::stride]
        records: dict[int, SlotRecord] = {}
        for index, marker in enumerate(valid):
            if marker <= 1:          # 0: free, 1: being filled in
                continue
            base = index * self.slot_size
            record = self._record(data, base)
            if record is not None:
                records[record.id] = record
        return records

    def _record(self, data: bytes, base: int) -> SlotRecord | None:
        first = last = 0
        if self.first_offset >= 0:
            first = int.from_bytes(data[base + self.first_offset:base + self.first_offset + 8],
                                   "little")
            last = int.from_bytes(data[base + self.last_offset:base + self.last_offset + 8],
                                  "little")
            if first != last:
                return None          # reused while we copied it: read next tick
        key = data[base + self.key_offset:base + self.key_offset + self.key_size]
        if self.pid_offset >= 0:
            pid = int.from_bytes(data[base + self.pid_offset:base + self.pid_offset + 4], "little")
            start = self.key_pid_offset
            key = key[:start] + pid.to_bytes(4, "little") + key[start + 4:]
        return SlotRecord(first, key, self.values.values(data, base))

    def take_retired(self) -> list[SlotRecord]:
        """Remove and return every retired slot (the kernel never touches them again)."""
        if self.retired is None:
            return []
        batch = self.retired.read(delete=True)
        records = []
        for index in range(batch.count):
            record = self._record(batch.values, index * batch.value_size)
            if record is not None:
                records.append(record)
        return records


class CountersSource:
    """A (per-CPU) hash keyed by the series key whose value is counters, or a
    (per-CPU) array of counters indexed by one field of the series key."""

    def __init__(self, spec: SourceSpec, program, fields: tuple[str, ...]) -> None:
        table = _table(program, spec.map)
        self.spec = spec
        self.reader = MapReader(table, spec.map)
        leaf = getattr(table, "sLeaf", table.Leaf)
        self.values = ValueLayout(leaf, fields, f"source {spec.map}")
        self.key_type = None if spec.index_field else table.Key
        self.series_key: Callable[[int], bytes] | None = None   # arrays: set by the sampler

    def read(self) -> dict[bytes, list[int]]:
        batch = self.reader.read()
        out: dict[bytes, list[int]] = {}
        for index in range(batch.count):
            values = self._sum(batch, index)
            if self.series_key is None:
                out[batch.key(index)] = values
            elif any(values):        # an array holds every index; a series is one that counted
                out[self.series_key(int.from_bytes(batch.key(index), "little"))] = values
        return out

    def _sum(self, batch, index: int) -> list[int]:
        base = index * batch.value_size
        if not batch.cpu_stride:
            return self.values.values(batch.values, base)
        total = self.values.values(batch.values, base)
        for cpu in range(1, POSSIBLE_CPUS):
            for position, value in enumerate(
                    self.values.values(batch.values, base + cpu * batch.cpu_stride)):
                total[position] += value
        return total

    def take(self, key: bytes) -> list[int] | None:
        if self.spec.index_field:
            return None              # array entries cannot be removed: such series stay live
        raw = self.reader.take(key)
        if raw is None:
            return None
        if not self.reader.per_cpu:
            return self.values.values(raw)
        total = [0] * self.values.width
        for cpu in range(POSSIBLE_CPUS):
            for position, value in enumerate(self.values.values(raw, cpu * self.reader.cpu_stride)):
                total[position] += value
        return total


@dataclass(frozen=True, slots=True)
class SlotHistogram:
    slots: tuple[int, ...]
    sum: int


class HistogramSource:
    """A (per-CPU) hash keyed by the series key whose value is a struct ig_hist,
    or a (per-CPU) array of them indexed by one field of the series key."""

    def __init__(self, spec: SourceSpec, program) -> None:
        table = _table(program, spec.map)
        self.spec = spec
        self.reader = MapReader(table, spec.map)
        leaf = getattr(table, "sLeaf", table.Leaf)
        slots = dict(leaf._fields_).get("slots")
        if slots is None or not hasattr(leaf, "sum"):
            raise SourceLayoutError(f"source {spec.map}: a histogram value must be struct ig_hist")
        self.slot_count = slots._length_
        self.unpack = struct.Struct(f"<{self.slot_count + 1}Q").unpack_from
        self.key_type = None if spec.index_field else table.Key
        self.series_key: Callable[[int], bytes] | None = None   # arrays: set by the sampler

    def read(self) -> dict[bytes, SlotHistogram]:
        batch = self.reader.read()
        out: dict[bytes, SlotHistogram] = {}
        for index in range(batch.count):
            histogram = self._sum(batch.values, index * batch.value_size, batch.cpu_stride)
            if self.series_key is None:
                out[batch.key(index)] = histogram
            elif any(histogram.slots):
                out[self.series_key(int.from_bytes(batch.key(index), "little"))] = histogram
        return out

    def _sum(self, data: bytes, base: int, stride: int) -> SlotHistogram:
        totals = list(self.unpack(data, base))
        for cpu in range(1, POSSIBLE_CPUS if stride else 1):
            for position, value in enumerate(self.unpack(data, base + cpu * stride)):
                totals[position] += value
        return SlotHistogram(tuple(totals[:-1]), totals[-1])

    def take(self, key: bytes) -> SlotHistogram | None:
        if self.spec.index_field:
            return None              # as for counters: array series stay live
        raw = self.reader.take(key)
        if raw is None:
            return None
        return self._sum(raw, 0, self.reader.cpu_stride)
