"""The sampler: once per tick it reads every source of a running gadget, keeps
the counts of retired kernel entries, and builds an immutable Snapshot with
every series' cumulative value. Exporters and the live table only ever see
Snapshots; the kernel is read once per tick whatever their number."""

from __future__ import annotations

from collections.abc import Callable, Iterable
import ctypes
from dataclasses import dataclass, field
import threading
import time

from ig_metrics.config.model import DEFAULT_SAMPLER_MAX_SERIES
from ig_metrics.gadgets.decoders import DECODERS
from ig_metrics.gadgets.spec import GadgetSpec, MetricSpec
from ig_metrics.pipeline.snapshot import (COUNTER, HISTOGRAM, AttrValue, Attributes,
                                          HistogramValue, MetricData, MetricInfo, Point,
                                          Snapshot)
from ig_metrics.pipeline.sources import (CountersSource, HistogramSource, SlotHistogram,
                                         SlotsSource, SourceLayoutError, index_key_type,
                                         index_series_key)

DEFAULT_IDLE_EXPIRY = 600.0        # seconds a series may stay unchanged before it is dropped
COMMAND_CACHE_LIMIT = 65536
# The sampler's memory budget, in series it keeps apart (each costs about 1.2 KB
# here: its decoded attributes, carry and start times; docs/performance.md).
DEFAULT_MAX_SERIES = DEFAULT_SAMPLER_MAX_SERIES
# Where the keys beyond the budget are summed: not a valid key (real keys are
# key_size bytes), exported with the attribute otel.metric.overflow=true.
OVERFLOW_KEY = b""
OVERFLOW_ATTRIBUTES: Attributes = (("otel.metric.overflow", True),)


@dataclass
class _Series:
    """What the sampler remembers of one series key between ticks."""

    attributes: Attributes
    carry: list[int]                     # counts of kernel entries that no longer exist
    histogram_carry: dict[str, list[int]] = field(default_factory=dict)  # map -> slots + [sum]
    started_ns: dict[str, int] = field(default_factory=dict)             # per metric
    fingerprint: tuple = ()
    last_change_ns: int = 0


@dataclass
class _Reading:
    """Everything one tick read from the kernel, per series key."""

    counters: dict[bytes, list[int]]                       # cumulative totals, carry included
    per_source: list[dict[bytes, list[int]]]               # raw reads of each counters map
    histograms: dict[str, dict[bytes, SlotHistogram]]      # raw reads of each histogram map
    live_keys: set[bytes]                                  # keys held by a live slot


class Sampler:
    """Reads one loaded gadget. `tick()` may be called from any one thread at a time."""

    def __init__(self, spec: GadgetSpec, program, *, resource: Attributes,
                 idle_expiry: float = DEFAULT_IDLE_EXPIRY,
                 extra_metrics: Callable[[int], Iterable[MetricData]] | None = None,
                 clock: Callable[[], int] = time.time_ns,
                 max_series: int | None = DEFAULT_MAX_SERIES) -> None:
        self.spec = spec
        self.max_series = max_series
        self.program = program
        self.resource = resource
        self.idle_expiry_ns = int(idle_expiry * 1e9)
        self.extra_metrics = extra_metrics
        self.clock = clock
        self.fields = _counter_fields(spec)
        self._field_index = {name: index for index, name in enumerate(self.fields)}
        self.slots: list[SlotsSource] = []
        self.counters: list[CountersSource] = []
        self.histograms: dict[str, HistogramSource] = {}
        self._build_sources()
        self._series: dict[bytes, _Series] = {}
        # Kernel keys seen once the budget was full: summed into OVERFLOW_KEY for
        # as long as they live (taking them out again would make it go down).
        self._folded: set[bytes] = set()
        self._commands: dict[int, str] = {}
        self._seq = 0
        self._previous_ns = clock()          # counting started (about) now
        self._lock = threading.Lock()
        self.last_tick_seconds = 0.0
        self.expired_series = 0

    # --- setup ------------------------------------------------------------------
    def _build_sources(self) -> None:
        key_type = None
        indexed: list[CountersSource | HistogramSource] = []
        for source in self.spec.sources:
            if source.kind == "counters":
                reader = CountersSource(source, self.program, self.fields)
                self.counters.append(reader)
            elif source.kind == "histogram":
                reader = HistogramSource(source, self.program)
                self.histograms[source.map] = reader
            else:
                continue
            key_type = key_type or reader.key_type
            if source.index_field:
                indexed.append(reader)
        if key_type is None and indexed:
            key_type = index_key_type(indexed[0].spec.index_field)
        if key_type is None:
            raise SourceLayoutError(f"gadget {self.spec.name}: no counters or histogram "
                                    "source defines the series key")
        for reader in indexed:
            reader.series_key = index_series_key(key_type, reader.spec.index_field,
                                                 f"source {reader.spec.map}.index_field")
        self.key_type = key_type
        self.key_size = ctypes.sizeof(key_type)
        key_fields = {name for name, _ in key_type._fields_}
        for attribute in self.spec.attributes:
            if attribute.field not in key_fields and not attribute.optional:
                raise SourceLayoutError(
                    f"gadget {self.spec.name}: attribute {attribute.name} reads field "
                    f"'{attribute.field}', which the series key does not have "
                    f"(fields: {', '.join(sorted(key_fields))})")
        for source in self.spec.sources:
            if source.kind == "slots":
                self.slots.append(SlotsSource(source, self.program, self.fields, self.key_size))
        counted = set().union(*(reader.values.present for reader in (*self.counters, *self.slots)))
        for name in self.fields:
            if name not in counted:
                raise SourceLayoutError(
                    f"gadget {self.spec.name}: no counters or slots source has a field "
                    f"'{name}' (a metric's `values`)")

    # --- decoding ---------------------------------------------------------------
    def command_of(self, pid: int) -> str:
        """Process name as the kernel recorded it when the key was made, else /proc."""
        name = self._commands.get(pid)
        if name is not None:
            return name
        name = self._kernel_command(pid) or _proc_command(pid)
        if len(self._commands) >= COMMAND_CACHE_LIMIT:
            self._commands.clear()
        self._commands[pid] = name
        return name

    def _kernel_command(self, pid: int) -> str:
        if not self.program.has_table("comms"):
            return ""
        table = self.program.table("comms")
        try:
            value = table[ctypes.c_uint32(pid)]
        except KeyError:
            return ""
        return bytes(value.comm).split(b"\0", 1)[0].decode("utf-8", "replace")

    def _decode(self, key: bytes) -> Attributes:
        fields = self.key_type.from_buffer_copy(key)
        values = {name: getattr(fields, name) for name, _ in self.key_type._fields_}
        out: list[tuple[str, AttrValue]] = []
        for attribute in self.spec.attributes:
            if attribute.field not in values:
                continue             # an optional attribute the program was built without
            decoder = DECODERS[attribute.decoder]
            value = decoder(values[attribute.field], values, attribute, self)
            if attribute.optional and value == "":
                continue
            out.append((attribute.name, value))
        return tuple(out)

    def _series_for(self, key: bytes) -> _Series:
        series = self._series.get(key)
        if series is None:
            attributes = OVERFLOW_ATTRIBUTES if key == OVERFLOW_KEY else self._decode(key)
            series = _Series(attributes, [0] * len(self.fields))
            self._series[key] = series
        return series

    @property
    def folded_keys(self) -> int:
        """Kernel keys beyond the memory budget, summed into the overflow series."""
        return len(self._folded)

    def _kept(self, key: bytes) -> bytes:
        """`key`, or OVERFLOW_KEY once the budget is full and `key` is new."""
        if self.max_series is None or key in self._series:
            return key
        kept = len(self._series) - (OVERFLOW_KEY in self._series)
        # The budget counts the overflow series, as an exporter's max_series does.
        if key not in self._folded and kept < self.max_series - 1:
            self._series_for(key)          # takes its place in the budget now
            return key
        self._folded.add(key)
        return OVERFLOW_KEY

    def _fold(self, read: dict[bytes, object], add) -> dict[bytes, object]:
        """`read` with the keys beyond the budget summed under OVERFLOW_KEY."""
        if self.max_series is None or len(self._series) + len(read) <= self.max_series \
                and not self._folded:
            return read
        out: dict[bytes, object] = {}
        for key, value in read.items():
            kept = self._kept(key)
            out[kept] = add(out[kept], value) if kept in out else value
        return out

    # --- the tick ---------------------------------------------------------------
    def tick(self, final: bool = False) -> Snapshot:
        with self._lock:
            started = time.perf_counter()
            now = self.clock()
            reading = self._read()
            self._note_changes(reading, now)
            metrics = self._counter_metrics(reading) + self._histogram_metrics(reading)
            self._expire(reading, now)
            self._seq += 1
            self.last_tick_seconds = time.perf_counter() - started
            extra = tuple(self.extra_metrics(now)) if self.extra_metrics else ()
            snapshot = Snapshot(self._seq, now, self.spec.name, self.resource,
                                tuple(metrics) + extra, final)
            self._previous_ns = now
            return snapshot

    def _read(self) -> _Reading:
        """Cumulative counter values per series key: retired counts + live slots
        + counter maps. Slots are read before their retired entries are taken,
        and a retired entry replaces the live copy with the same id."""
        totals: dict[bytes, list[int]] = {}
        live_keys: set[bytes] = set()
        for source in self.slots:
            live = source.read()
            for record in source.take_retired():
                live.pop(record.id, None)
                _add_into(self._series_for(self._kept(record.key)).carry, record.values)
            for record in live.values():
                live_keys.add(record.key)
                _accumulate(totals, record.key, record.values)
        per_source = []
        for source in self.counters:
            values = source.read()
            per_source.append(values)
            if source.spec.index_field:
                live_keys.update(values)     # array entries are never removed
            for key, counts in values.items():
                _accumulate(totals, key, counts)
        totals = self._fold(totals, _summed_counts)
        for key, series in self._series.items():
            if any(series.carry):
                _accumulate(totals, key, series.carry)
        histograms = {name: self._fold(source.read(), _summed_slots)
                      for name, source in self.histograms.items()}
        for name, source in self.histograms.items():
            if source.spec.index_field:
                live_keys.update(histograms[name])
        return _Reading(totals, per_source, histograms, live_keys)

    def _histogram_total(self, series: _Series, map_name: str,
                         kernel: SlotHistogram | None) -> SlotHistogram | None:
        carry = series.histogram_carry.get(map_name)
        if carry is None:
            return kernel
        if kernel is None:
            return SlotHistogram(tuple(carry[:-1]), carry[-1])
        slots = tuple(a + b for a, b in zip(kernel.slots, carry))
        return SlotHistogram(slots, kernel.sum + carry[-1])

    def _note_changes(self, reading: _Reading, now: int) -> None:
        keys = set(reading.counters)
        for histogram in reading.histograms.values():
            keys.update(histogram)
        for key in keys:
            series = self._series_for(key)
            fingerprint = (tuple(reading.counters.get(key, ())),
                           tuple(reading.histograms[name].get(key) for name in self.histograms))
            if fingerprint != series.fingerprint:
                series.fingerprint = fingerprint
                series.last_change_ns = now

    def _start_of(self, series: _Series, metric_key: str) -> int:
        start = series.started_ns.get(metric_key)
        if start is None:
            # It began counting after the previous read (or at attach).
            start = series.started_ns[metric_key] = self._previous_ns
        return start

    def _counter_metrics(self, reading: _Reading) -> list[MetricData]:
        points: dict[str, list[Point]] = {metric.name: [] for metric in self.spec.metrics}
        for key, values in reading.counters.items():
            series = self._series_for(key)
            for metric in self.spec.metrics:
                if metric.kind == HISTOGRAM:
                    continue
                for value_spec in metric.values:
                    value = values[self._field_index[value_spec.field]]
                    if value == 0 and metric.kind == COUNTER:
                        continue     # a series exists once it has counted something
                    start = self._start_of(series, f"{metric.name}/{value_spec.field}")
                    points[metric.name].append(
                        Point(series.attributes + value_spec.attributes, value, start))
        return [MetricData(_info(metric), _carried(metric, points[metric.name]))
                for metric in self.spec.metrics if metric.kind != HISTOGRAM]

    def _histogram_metrics(self, reading: _Reading) -> list[MetricData]:
        out = []
        for metric in self.spec.metrics:
            if metric.kind != HISTOGRAM:
                continue
            kernel = reading.histograms[metric.source]
            keys = set(kernel) | {key for key, series in self._series.items()
                                  if metric.source in series.histogram_carry}
            points = []
            for key in keys:
                series = self._series_for(key)
                total = self._histogram_total(series, metric.source, kernel.get(key))
                start = self._start_of(series, metric.name)
                points.append(Point(series.attributes, _histogram_value(metric, total), start))
            out.append(MetricData(_info(metric), _carried(metric, points)))
        return out

    # --- expiry -----------------------------------------------------------------
    def _expire(self, reading: _Reading, now: int) -> None:
        """Drops series unchanged for idle_expiry, from the kernel maps and from
        the export. Kernel entries are taken atomically (lookup-and-delete): if
        one changed since this tick read it, an event raced in, so its counts
        move to the series' carry and the series lives on. A series held by a
        live slot (an open socket) never expires."""
        if self.idle_expiry_ns <= 0:
            return
        for key, series in list(self._series.items()):
            if (not series.last_change_ns or now - series.last_change_ns < self.idle_expiry_ns
                    or key in reading.live_keys or key == OVERFLOW_KEY):
                continue
            raced = False
            for source, read in zip(self.counters, reading.per_source):
                taken = source.take(key)
                if taken is not None:
                    raced |= taken != read.get(key)
                    _add_into(series.carry, taken)
            for name, source in self.histograms.items():
                taken = source.take(key)
                if taken is not None:
                    raced |= taken != reading.histograms[name].get(key)
                    carry = series.histogram_carry.setdefault(name, [0] * (len(taken.slots) + 1))
                    _add_into(carry, [*taken.slots, taken.sum])
            if raced:
                series.last_change_ns = now
            else:
                del self._series[key]
                self.expired_series += 1


def _carried(metric: MetricSpec, points: list[Point]) -> tuple[Point, ...]:
    """The points with only the attributes the metric carries (its
    `attributes`, those its values add, and the overflow mark); points that
    become alike are summed, from the earliest start."""
    if not metric.attributes:
        return tuple(points)
    keep = {*metric.attributes, *metric.attribute_extras,
            *(name for name, _ in OVERFLOW_ATTRIBUTES)}
    merged: dict[Attributes, Point] = {}
    for point in points:
        attributes = tuple(item for item in point.attributes if item[0] in keep)
        other = merged.get(attributes)
        if other is None:
            merged[attributes] = Point(attributes, point.value, point.start_time_ns)
        else:
            merged[attributes] = Point(attributes, _sum_values(other.value, point.value),
                                       min(other.start_time_ns, point.start_time_ns))
    return tuple(merged.values())


def _sum_values(a, b):
    if isinstance(a, HistogramValue):
        return HistogramValue(tuple(x + y for x, y in zip(a.counts, b.counts)), a.sum + b.sum,
                              a.count + b.count)
    return a + b


def _summed_counts(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b)]


def _summed_slots(a: SlotHistogram, b: SlotHistogram) -> SlotHistogram:
    return SlotHistogram(tuple(x + y for x, y in zip(a.slots, b.slots)), a.sum + b.sum)


def _add_into(target: list[int], values) -> None:
    for index, value in enumerate(values):
        target[index] += value


def _accumulate(totals: dict[bytes, list[int]], key: bytes, values: list[int]) -> None:
    current = totals.get(key)
    if current is None:
        totals[key] = list(values)
    else:
        _add_into(current, values)


def _counter_fields(spec: GadgetSpec) -> tuple[str, ...]:
    names: list[str] = []
    for metric in spec.metrics:
        for value in metric.values:
            if value.field not in names:
                names.append(value.field)
    return tuple(names)


def _info(metric: MetricSpec) -> MetricInfo:
    return MetricInfo(metric.name, metric.kind, metric.unit, metric.description, metric.bounds)


def _histogram_value(metric: MetricSpec, histogram: SlotHistogram) -> HistogramValue:
    """The kernel's log2 slots as explicit buckets: slot k for k < buckets is the
    bucket bounded by 2^k - 1 kernel units; higher slots go to the +Inf bucket."""
    exported = list(histogram.slots[:metric.buckets])
    exported += [0] * (metric.buckets - len(exported))
    exported.append(sum(histogram.slots[metric.buckets:]))
    return HistogramValue(tuple(exported), histogram.sum / metric.divisor, sum(exported))


def _proc_command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""
