"""The sampler: once per tick it reads every source of a running gadget, keeps
the counts of retired kernel entries, and builds an immutable Snapshot with
every series' cumulative value. Exporters and the live table only ever see
Snapshots; the kernel is read once per tick whatever their number.

A series key's attributes are decoded once, and again only when what they
were decoded from changes (a pod's metadata arriving late): the key's counts
so far stay with its old attributes, and it counts anew, from that tick,
under the new ones (docs/kubernetes.md, "series identity")."""

from __future__ import annotations

import ctypes
import gc
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import TypeVar

from ig_metrics.config.model import (
    DEFAULT_ATTRIBUTES,
    DEFAULT_IDLE_EXPIRY,
    DEFAULT_SAMPLER_MAX_SERIES,
    AttributeSelection,
)
from ig_metrics.gadgets.spec import GadgetSpec, MetricSpec
from ig_metrics.k8s.attribution import CGROUP, Attribution, Token
from ig_metrics.model.snapshot import (
    COUNTER,
    HISTOGRAM,
    Attributes,
    HistogramValue,
    MetricData,
    MetricInfo,
    Point,
    Snapshot,
)
from ig_metrics.pipeline.decoding import Decoded, KeyDecoder
from ig_metrics.pipeline.retained import RetainedCounts, add_point
from ig_metrics.pipeline.sources import (
    CountersSource,
    HistogramSource,
    SlotHistogram,
    SlotsSource,
    SourceLayoutError,
    index_key_type,
    index_series_key,
)

DEFAULT_LINGER = 300.0             # seconds a renamed series' final value is still exported
# The sampler's memory budget, in series it keeps apart (each costs about 1.2 KB
# here: its decoded attributes, carry and start times; docs/performance.md).
DEFAULT_MAX_SERIES = DEFAULT_SAMPLER_MAX_SERIES
# Where the keys beyond the budget are summed: not a valid key (real keys are
# key_size bytes), exported with the attribute otel.metric.overflow=true.
OVERFLOW_KEY = b""
OVERFLOW_ATTRIBUTES: Attributes = (("otel.metric.overflow", True),)
_ATTRIBUTES = attrgetter("attributes")
_Value = TypeVar("_Value")           # what a map's read gives per key (counts, a histogram)


@dataclass(slots=True)
class _Series:
    """What the sampler remembers of one series key between ticks."""

    decoded: Decoded                     # its attributes per metric, and what they wait on
    # Counts of kernel entries that no longer exist; after the attributes
    # changed, minus the counts left with the old ones (so it may be negative).
    carry: list[int]
    histogram_carry: dict[str, list[int]] = field(default_factory=dict)  # map -> slots + [sum]
    started_ns: dict[str, int] = field(default_factory=dict)             # per metric
    last_change_ns: int = 0
    # What was read last, to see changes: unchanged kernel entries come back
    # as the very same objects (sources.ReadCache), so mostly `is` decides.
    last_counts: list[int] | None = None
    last_histograms: dict[str, object] | None = None
    # The points made from `points_of` (the counts they were made from): an
    # unchanged series reuses them. None after anything they depend on changed.
    # One entry per counter value of the spec (Sampler._plan), None for a
    # counter still at zero.
    points: list[Point | None] | None = None
    points_of: list[int] | None = None
    # Its attributes per entry of the plan (the metric's, plus the value's extras).
    point_attributes: list[Attributes] | None = None
    histogram_points: dict[str, tuple[object, Point | None]] | None = None

    def forget_points(self) -> None:
        self.points = self.points_of = self.histogram_points = self.point_attributes = None


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
                 max_series: int | None = DEFAULT_MAX_SERIES,
                 attribution: Attribution | None = None,
                 selection: AttributeSelection = DEFAULT_ATTRIBUTES,
                 linger: float = DEFAULT_LINGER) -> None:
        self.spec = spec
        # How long a series that ended because its attributes changed keeps
        # being exported with its final value (the run: its slowest exporter's
        # longest interval, and more).
        self.linger_ns = int(linger * 1e9)
        self.max_series = max_series
        self.program = program
        self.resource = resource
        self.idle_expiry_ns = int(idle_expiry * 1e9)
        self.extra_metrics = extra_metrics
        self.clock = clock
        self.fields = _counter_fields(spec)
        self._field_index = {name: index for index, name in enumerate(self.fields)}
        # Every counter or gauge value of the spec: (metric name, metric index,
        # index in the counts, key in _Series.started_ns, is a counter).
        self._plan = tuple(
            (metric.name, index, self._field_index[value.field], f"{metric.name}/{value.field}",
             metric.kind == COUNTER)
            for index, metric in enumerate(spec.metrics) if metric.kind != HISTOGRAM
            for value in metric.values)
        # Each plan entry's index among its metric's values (for the decoder's extras).
        self._value_indexes = tuple(
            value_index for metric in spec.metrics if metric.kind != HISTOGRAM
            for value_index, _ in enumerate(metric.values))
        # Each metric's MetricInfo, made once (a histogram's bounds are computed).
        self._infos = {metric.name: _info(metric) for metric in spec.metrics}
        self._layout: list[list[Attributes]] = []   # _alike_metrics: what it was found for
        self._alike: set[str] = set()
        # Each histogram metric's point attributes at the last tick, and whether some are alike.
        self._histogram_layout: dict[str, tuple[list[Attributes], bool]] = {}
        # What the points loop of _counter_metrics needs of each plan entry:
        # (entry, index in the counts, is a counter, key in _Series.started_ns).
        self._point_plan = tuple((entry, field, counter, start_key) for entry, (
            _, _, field, start_key, counter) in enumerate(self._plan))
        self.slots: list[SlotsSource] = []
        self.counters: list[CountersSource] = []
        self.histograms: dict[str, HistogramSource] = {}
        self._build_sources()
        self.attribution = attribution
        self.decoder = KeyDecoder(spec, self.key_type, program, attribution=attribution,
                                  selection=selection)
        self._overflow = Decoded(tuple(OVERFLOW_ATTRIBUTES for _ in spec.metrics))
        self._series: dict[bytes, _Series] = {}
        # Kernel keys seen once the budget was full: summed into OVERFLOW_KEY for
        # as long as they live (taking them out again would make it go down).
        self._folded: set[bytes] = set()
        # What decoded attributes wait on -> the keys to decode again when it changes.
        self._waiting: dict[Token, set[bytes]] = {}
        self._retained = RetainedCounts()
        self._histogram_carried: dict[str, set[bytes]] = {}   # map -> keys with a carry
        self._carried: set[bytes] = set()                    # keys whose counts carry may be non-zero
        self.redecoded = 0                   # keys decoded again (tests, docs)
        self._seq = 0
        self._previous_ns = clock()          # counting started (about) now
        self._lock = threading.Lock()
        self.last_tick_seconds = 0.0
        self.expired_series = 0

    # --- setup ------------------------------------------------------------------
    def _build_sources(self) -> None:
        key_type = None
        indexed: list[CountersSource | HistogramSource] = []
        reader: CountersSource | HistogramSource
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
            if reader.indexed:
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
        valued: list[CountersSource | SlotsSource] = [*self.counters, *self.slots]
        counted = set().union(*(source.values.present for source in valued))
        for name in self.fields:
            if name not in counted:
                raise SourceLayoutError(
                    f"gadget {self.spec.name}: no counters or slots source has a field "
                    f"'{name}' (a metric's `values`)")

    # --- decoding ---------------------------------------------------------------
    def _series_for(self, key: bytes) -> _Series:
        series = self._series.get(key)
        if series is None:
            decoded = self._overflow if key == OVERFLOW_KEY else self.decoder.decode(key)
            series = _Series(decoded, [0] * len(self.fields))
            self._series[key] = series
            self._wait(key, decoded.waits)
        return series

    def _wait(self, key: bytes, waits: frozenset[Token]) -> None:
        for token in waits:
            self._waiting.setdefault(token, set()).add(key)

    def _stop_waiting(self, key: bytes, waits: frozenset[Token]) -> None:
        for token in waits:
            keys = self._waiting.get(token)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._waiting[token]

    def _keys_to_decode_again(self, attribution: Attribution) -> set[bytes]:
        """Keys whose attributes may have changed since they were decoded: those
        waiting on a cgroup path (asked again every tick; the resolver walks
        at most every 0.2 s) and those of pods and peers the watches changed."""
        changes = attribution.take_changes()
        keys: set[bytes] = set()
        for token, waiting in self._waiting.items():
            if token[0] == CGROUP or token[0] in changes.everything or token in changes.tokens:
                keys.update(waiting)
        return keys

    def _decode_again(self, reading: _Reading, now: int) -> None:
        if self.attribution is None:
            return
        for key in self._keys_to_decode_again(self.attribution):
            series = self._series.get(key)
            if series is None:
                continue
            decoded = self.decoder.decode(key)
            self.redecoded += 1
            self._stop_waiting(key, series.decoded.waits)
            self._wait(key, decoded.waits)
            if decoded.by_metric != series.decoded.by_metric:
                self._rebase(key, series, reading, now)
                series.forget_points()
            series.decoded = decoded

    def _rebase(self, key: bytes, series: _Series, reading: _Reading, now: int) -> None:
        """The key's attributes changed: its totals so far stay with the old
        attributes (kept while other keys add to those points), and it counts
        from zero, from this tick on, under the new ones: a new series whose
        start is now. No exported cumulative point goes down."""
        counts = reading.counters.get(key)
        histograms = {name: self._histogram_total(series, name, reading.histograms[name].get(key))
                      for name in self.histograms}
        self._retain(series, counts, histograms, linger_until=now + self.linger_ns)
        if counts is not None:
            _add_into(series.carry, [-value for value in counts])
            self._carried.add(key)
            reading.counters[key] = [0] * len(counts)
        for name, total in histograms.items():
            if total is not None:
                _add_into(self._histogram_carry(key, series, name, len(total.slots)),
                          [-value for value in (*total.slots, total.sum)])
        series.started_ns.clear()

    def _histogram_carry(self, key: bytes, series: _Series, name: str, slots: int) -> list[int]:
        """The series' carry for histogram map `name` (made, and noted, if new)."""
        carry = series.histogram_carry.get(name)
        if carry is None:
            carry = series.histogram_carry[name] = [0] * (slots + 1)
            self._histogram_carried.setdefault(name, set()).add(key)
        return carry

    def _retain(self, series: _Series, counts: list[int] | None,
                histograms: dict[str, SlotHistogram | None], *, linger_until: int = 0) -> None:
        """Keeps the counts `series` leaves with the points of its attributes
        (exported on their own until `linger_until`: see RetainedCounts)."""
        for index, metric in enumerate(self.spec.metrics):
            attributes = series.decoded.by_metric[index]
            if metric.kind == COUNTER and counts is not None:
                for value_index, value_spec in enumerate(metric.values):
                    value = counts[self._field_index[value_spec.field]]
                    if value:
                        start = series.started_ns.get(f"{metric.name}/{value_spec.field}",
                                                      self._previous_ns)
                        self._retained.keep(metric.name, Point(
                            attributes + self.decoder.extras[index][value_index], value, start),
                            linger_until=linger_until)
            elif metric.kind == HISTOGRAM \
                    and (total := histograms.get(metric.source)) is not None:
                histogram = _histogram_value(metric, total)
                if histogram.count:
                    start = series.started_ns.get(metric.name, self._previous_ns)
                    self._retained.keep(metric.name, Point(attributes, histogram, start),
                                        linger_until=linger_until)

    def map_fill(self) -> dict[str, float]:
        """Each hash or slots map's share of its entries in use at the last
        read (arrays, always full, left out)."""
        sources: list[SlotsSource | CountersSource | HistogramSource] = [
            *self.slots, *self.counters, *self.histograms.values()]
        return {source.spec.map: source.entries / source.capacity
                for source in sources if source.capacity}

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

    def _fold(self, read: dict[bytes, _Value], add: Callable[[_Value, _Value], _Value],
              ) -> dict[bytes, _Value]:
        """`read` with the keys beyond the budget summed under OVERFLOW_KEY."""
        if self.max_series is None or len(self._series) + len(read) <= self.max_series \
                and not self._folded:
            return read
        out: dict[bytes, _Value] = {}
        for key, value in read.items():
            kept = self._kept(key)
            out[kept] = add(out[kept], value) if kept in out else value
        return out

    # --- the tick ---------------------------------------------------------------
    def tick(self, final: bool = False) -> Snapshot:
        with self._lock, _collector_paused():
            started = time.perf_counter()
            now = self.clock()
            reading = self._read()
            self._decode_again(reading, now)
            self._note_changes(reading, now)
            metrics = self._counter_metrics(reading, now) + self._histogram_metrics(reading, now)
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
                kept = self._kept(record.key)
                _add_into(self._series_for(kept).carry, record.values)
                self._carried.add(kept)
            for record in live.values():
                live_keys.add(record.key)
                _accumulate(totals, record.key, record.values)
        per_source = []
        for counters in self.counters:
            values = counters.read()
            per_source.append(values)
            if counters.indexed:
                live_keys.update(values)     # array entries are never removed
            if not totals:
                totals = dict(values)      # the first source's lists, as _accumulate keeps them
                continue
            for key, counts in values.items():
                _accumulate(totals, key, counts)
        totals = self._fold(totals, _summed_counts)
        for key in self._carried:
            carry = self._series[key].carry
            if any(carry):
                _accumulate(totals, key, list(carry))
        histograms = {name: self._fold(source.read(), _summed_slots)
                      for name, source in self.histograms.items()}
        for name, histogram_source in self.histograms.items():
            if histogram_source.indexed:
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
        """Notes when each series' histograms last changed (its counts:
        _counter_metrics, in the same pass as their points)."""
        known, new_series = self._series, self._series_for
        for name, histograms in reading.histograms.items():
            for key, histogram in histograms.items():
                series = known.get(key) or new_series(key)
                last = series.last_histograms
                if last is None:
                    last = series.last_histograms = {}
                before = last.get(name)
                if histogram is not before and histogram != before:
                    last[name] = histogram
                    series.last_change_ns = now

    def _counter_metrics(self, reading: _Reading, now: int) -> list[MetricData]:
        """The counter and gauge points of every series key (and when its
        counts last changed). A key whose counts are the very list of the last
        tick keeps its points; otherwise each point whose value is as before
        is kept too, so that exporters see unchanged points by identity."""
        # One pass in one frame (no call per series): at 100k changed series
        # every call and every copy here is tens of milliseconds a tick.
        known, new_series, plan = self._series, self._series_for, self._point_plan
        width, previous = len(self._plan), self._previous_ns
        # Point(...) without its Python-level __new__: the tuple made directly.
        make = tuple.__new__
        rows: list[list[Point | None]] = []
        layout: list[list[Attributes]] = []
        append, append_layout = rows.append, layout.append
        for key, values in reading.counters.items():
            series = known.get(key) or new_series(key)
            # Made (and forgotten) with the points: a series with points has them.
            attributes = series.point_attributes or self._point_attributes(series)
            made = series.points
            if made is None or series.points_of is not values:
                if values != series.last_counts:
                    series.last_counts = values
                    series.last_change_ns = now
                if made is None:
                    made = series.points = [None] * width
                # The points are this series' own list, changed in place: the
                # snapshot holds tuples made from the rows below, never the list.
                # A point is (attributes, value, start_time_ns): indexed, not
                # named, in this loop.
                for entry, field, counter, start_key in plan:
                    value = values[field]
                    old = made[entry]
                    if old is not None:
                        if old[1] != value:
                            made[entry] = make(Point, (attributes[entry], value, old[2])) \
                                if value or not counter else None
                    elif value or not counter:
                        started = series.started_ns
                        start = started.get(start_key)
                        if start is None:
                            # It began counting after the previous read (or at attach).
                            start = started[start_key] = previous
                        made[entry] = make(Point, (attributes[entry], value, start))
                series.points_of = values
            append(made)
            append_layout(attributes)
        alike = self._alike_metrics(layout)
        columns = list(zip(*rows)) if rows else [() for _ in self._plan]
        out = []
        for metric in self.spec.metrics:
            if metric.kind == HISTOGRAM:
                continue
            entries = chain.from_iterable(column for entry, column in zip(self._plan, columns)
                                          if entry[0] == metric.name)
            retained = metric.kind == COUNTER and self._retained.holds(metric.name)
            if metric.name in alike or retained:
                points = _by_attributes(entries)
                if retained:
                    self._retained.add_to(metric.name, points, now)
                out.append(MetricData(self._infos[metric.name], tuple(points.values())))
            else:      # every point's attributes its own: nothing to sum
                out.append(MetricData(self._infos[metric.name], tuple(filter(None, entries))))
        return out

    def _alike_metrics(self, layout: list[list[Attributes]]) -> set[str]:
        """The metrics in which some series keys have alike attributes, found
        again only when the keys or their attributes changed since the last
        tick (hashing every point's attributes costs more than building it).
        `layout` is each key's attributes, per entry of the plan."""
        if layout != self._layout:        # the same lists: compared by identity
            self._layout = layout
            columns = list(zip(*layout)) if layout else [() for _ in self._plan]
            self._alike = set()
            for name in {entry[0] for entry in self._plan}:
                attributes = [item for entry, column in zip(self._plan, columns)
                              if entry[0] == name for item in column]
                if len(set(attributes)) < len(attributes):
                    self._alike.add(name)
        return self._alike

    def _point_attributes(self, series: _Series) -> list[Attributes]:
        """The series' attributes per entry of the plan (its metric's, plus the
        value's extras), made once per decoding."""
        by_metric, extras = series.decoded.by_metric, self.decoder.extras
        attributes = series.point_attributes = [
            by_metric[index] + extras[index][value_index]
            for value_index, (_, index, *_) in zip(self._value_indexes, self._plan)]
        return attributes

    def _histogram_metrics(self, reading: _Reading, now: int) -> list[MetricData]:
        """The histogram points of every series key, one pass per metric as for
        the counters: a key whose histogram is the very object of the last
        tick (sources.ReadCache) keeps its point."""
        known, new_series, previous = self._series, self._series_for, self._previous_ns
        make = tuple.__new__            # Point(...) without its Python-level __new__
        out = []
        for index, metric in enumerate(self.spec.metrics):
            if metric.kind != HISTOGRAM:
                continue
            name, source = metric.name, metric.source
            kernel = reading.histograms[source]
            carried = self._histogram_carried.get(source)
            made: list[Point] = []
            append = made.append
            for key in set(kernel).union(carried) if carried else kernel:
                series = known.get(key) or new_series(key)
                total = kernel.get(key)
                if series.histogram_carry:
                    total = self._histogram_total(series, source, total)
                cache = series.histogram_points
                if cache is None:
                    cache = series.histogram_points = {}
                cached = cache.get(name)
                if cached is not None and cached[0] is total:
                    point = cached[1]
                else:
                    assert total is not None   # a key not read has a carry (it is in carried)
                    value = _histogram_value(metric, total)
                    point = None           # None: nothing recorded since its attributes changed
                    if value.count:
                        started = series.started_ns
                        start = started.get(name)
                        if start is None:
                            start = started[name] = previous
                        point = make(Point, (series.decoded.by_metric[index], value, start))
                    cache[name] = (total, point)
                if point is not None:
                    append(point)
            retained = self._retained.holds(name)
            if retained or self._alike_histograms(name, made):
                points = _by_attributes(made)
                if retained:
                    self._retained.add_to(name, points, now)
                out.append(MetricData(self._infos[name], tuple(points.values())))
            else:        # every point's attributes its own: nothing to sum
                out.append(MetricData(self._infos[name], tuple(made)))
        return out

    def _alike_histograms(self, name: str, points: list[Point]) -> bool:
        """Whether some of histogram metric `name`'s points have alike
        attributes: found again only when the points' attributes are not
        those of the last tick (compared by identity first, as in
        _alike_metrics)."""
        layout = list(map(_ATTRIBUTES, points))
        known = self._histogram_layout.get(name)
        if known is None or known[0] != layout:
            known = self._histogram_layout[name] = (layout, len(set(layout)) < len(layout))
        return known[1]

    # --- expiry -----------------------------------------------------------------
    def _expire(self, reading: _Reading, now: int) -> None:
        """Drops series unchanged for idle_expiry, from the kernel maps and from
        the export. Kernel entries are taken atomically (lookup-and-delete): if
        one changed since this tick read it, an event raced in, so its counts
        move to the series' carry and the series lives on. A series held by a
        live slot (an open socket) never expires."""
        if self.idle_expiry_ns <= 0:
            return
        expired = self.expired_series
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
                    self._carried.add(key)
            for name, histogram_source in self.histograms.items():
                histogram = histogram_source.take(key)
                if histogram is not None:
                    raced |= histogram != reading.histograms[name].get(key)
                    _add_into(self._histogram_carry(key, series, name, len(histogram.slots)),
                              [*histogram.slots, histogram.sum])
            if raced:
                series.last_change_ns = now
                series.forget_points()      # its counts moved to the carry
            else:
                # Its final counts (all in its carry now) stay with the points
                # other keys still add to.
                self._retain(series, series.carry, {
                    name: SlotHistogram(tuple(carry[:-1]), carry[-1])
                    for name, carry in series.histogram_carry.items()})
                self._stop_waiting(key, series.decoded.waits)
                for name in series.histogram_carry:
                    self._histogram_carried[name].discard(key)
                del self._series[key]
                self._carried.discard(key)
                self.expired_series += 1
        if self.expired_series != expired:
            self.decoder.forget_commands()


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector held off for the tick: a tick at 100k
    series makes hundreds of thousands of objects that live until the next
    one, and each few thousand of them would start a collection, several a
    tick of the whole heap (about 0.5 s each at 100k series). The tick makes
    no cycles; the collector sees its objects once, after it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _by_attributes(points: Iterable[Point | None]) -> dict[Attributes, Point]:
    """The points by their attributes, those with the same attributes summed
    (keys that differ only in what a metric or the run's selection leaves out)."""
    present = list(filter(None, points))          # a Point is true, None is not
    out = dict(zip(map(_ATTRIBUTES, present), present))
    if len(out) < len(present):
        out = {}
        for point in present:
            add_point(out, point)
    return out


def _summed_counts(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b)]


def _summed_slots(a: SlotHistogram, b: SlotHistogram) -> SlotHistogram:
    return SlotHistogram(tuple(x + y for x, y in zip(a.slots, b.slots)), a.sum + b.sum)


def _add_into(target: list[int], values) -> None:
    for index, value in enumerate(values):
        target[index] += value


def _accumulate(totals: dict[bytes, list[int]], key: bytes, values: list[int]) -> None:
    """Adds `values` to the key's total. Lists are never changed in place:
    a key with one source keeps that source's list (and its identity)."""
    current = totals.get(key)
    totals[key] = values if current is None else [x + y for x, y in zip(current, values)]


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
    slots, buckets = histogram.slots, metric.buckets
    counts = slots[:buckets]
    if len(counts) < buckets:
        counts += (0,) * (buckets - len(counts))
    return HistogramValue(counts + (sum(slots[buckets:]),), histogram.sum / metric.divisor,
                          sum(slots))
