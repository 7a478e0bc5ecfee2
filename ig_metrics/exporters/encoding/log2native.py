"""The kernel's log2 slots as base-2 exponential buckets: Prometheus native
histograms of schema 0 and OTLP exponential histograms of scale 0. Which slot
goes to which bucket is worked out once per bucket layout, in exact rational
arithmetic (docs/exporters.md, "Native and exponential histograms", says why
it is done this way and how close to the truth it is)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from ig_metrics.model.snapshot import HistogramValue, MetricInfo


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each slot of a metric's classic buckets goes. `indexes[k - 1]` is the
    native bucket of slot k >= 1, Prometheus' numbering: bucket i holds the
    values in (2^(i-1), 2^i]. Slot 0 (the value 0) is the zero bucket. The last
    entry is for the classic +Inf bucket (the values past the last slot)."""

    indexes: tuple[int, ...]
    divisor: int                 # kernel units per exported unit (1e6 for us -> s)

    @property
    def contiguous(self) -> bool:
        """Each slot one bucket above the one before (the usual case)."""
        return all(b == a + 1 for a, b in zip(self.indexes, self.indexes[1:]))


@dataclass(frozen=True, slots=True)
class NativeBuckets:
    """One histogram point as exponential buckets. `offset` is the Prometheus
    index of counts[0]; runs of empty buckets inside are kept as zeros."""

    zero_count: int
    offset: int
    counts: tuple[int, ...]


def native_index(value: Fraction) -> int:
    """The i with value in (2^(i-1), 2^i]: upper-inclusive, as Prometheus and
    OpenTelemetry define their base-2 buckets. Exact for any positive rational."""
    if value <= 0:
        raise ValueError(f"no exponential bucket holds {value}")
    index = value.numerator.bit_length() - value.denominator.bit_length()
    # 2^(index-1) < value < 2^(index+1) now; settle which side of 2^index it is.
    while value > Fraction(2) ** index:
        index += 1
    while value <= Fraction(2) ** (index - 1):
        index -= 1
    return index


def slot_index(slot: int, divisor: int) -> int:
    """The native bucket of kernel slot `slot` >= 1 (the integers 2^(slot-1) ..
    2^slot - 1 in kernel units; one kernel unit is 1/divisor exported units):
    the bucket that holds most of the slot's integers. A slot spans less than a
    factor 2, so at most one bucket boundary 2^i falls inside it."""
    low, high = 1 << (slot - 1), (1 << slot) - 1
    first = native_index(Fraction(low, divisor))
    last = native_index(Fraction(high, divisor))
    if first == last:
        return first              # the whole slot in one bucket: exact
    # Integers v of the slot with v / divisor <= 2^first belong to `first`.
    boundary = Fraction(2) ** first * divisor
    below = int(boundary) - low + 1                      # floor(boundary) - low + 1
    above = high - int(boundary)
    return first if below > above else last


def layout_of(info: MetricInfo) -> Layout | None:
    """The layout of a histogram whose bounds are the kernel's log2 slots
    (0, then (2^k - 1) / divisor for k = 1 .. n, as gadgets/spec.py makes them);
    None for any other bounds, which stay classic."""
    return _layout(info.bounds)


def is_log2(bounds: tuple[float, ...]) -> bool:
    """Whether histograms with these bounds are exported as native (exponential)
    histograms where a format has them: only the kernel's log2 slots are."""
    return _layout(tuple(bounds)) is not None


@lru_cache(maxsize=256)
def _layout(bounds: tuple[float, ...]) -> Layout | None:
    if len(bounds) < 2 or bounds[0] != 0 or bounds[1] <= 0:
        return None
    divisor = round(1 / bounds[1])
    if divisor < 1 or any(bound != ((1 << slot) - 1) / divisor
                          for slot, bound in enumerate(bounds)):
        return None
    slots = len(bounds)           # slots 0 .. slots-1; slot `slots` stands for +Inf
    return Layout(tuple(slot_index(slot, divisor) for slot in range(1, slots + 1)), divisor)


def native_buckets(layout: Layout, value: HistogramValue) -> NativeBuckets:
    """`value`'s classic counts (one per slot, then +Inf) as exponential buckets.
    The +Inf bucket's values are only known to be past the last slot: they are
    placed in the bucket of the slot after it."""
    counts = value.counts
    if len(counts) != len(layout.indexes) + 1:
        raise ValueError(f"{len(counts)} bucket counts for {len(layout.indexes)} slots "
                         f"and +Inf")
    indexes = layout.indexes
    if layout.contiguous:
        slot_counts = counts[1:]
        first = next((k for k, count in enumerate(slot_counts) if count), None)
        if first is None:
            return NativeBuckets(counts[0], 0, ())
        last = len(slot_counts) - next(k for k, count in enumerate(reversed(slot_counts))
                                       if count)
        return NativeBuckets(counts[0], indexes[first], tuple(slot_counts[first:last]))
    by_index: dict[int, int] = {}
    for index, count in zip(indexes, counts[1:]):
        if count:
            by_index[index] = by_index.get(index, 0) + count
    if not by_index:
        return NativeBuckets(counts[0], 0, ())
    low, high = min(by_index), max(by_index)
    return NativeBuckets(counts[0], low,
                         tuple(by_index.get(index, 0) for index in range(low, high + 1)))


def spans_and_deltas(buckets: NativeBuckets) -> tuple[list[tuple[int, int]], list[int]]:
    """Prometheus' sparse form: spans (offset from the end of the previous span,
    the first one's from 0; length) over the non-empty runs, and each bucket's
    count as the difference from the bucket before it in the spans. Gaps of up
    to two empty buckets stay inside a span (cheaper than a new span)."""
    spans: list[list[int]] = []
    deltas: list[int] = []
    previous = 0
    end: int | None = None               # the index just after the last span
    for position, count in enumerate(buckets.counts):
        if count == 0:
            continue
        index = buckets.offset + position
        if end is not None and index - end <= 2:
            for _ in range(index - end):        # the empty buckets between, as zeros
                deltas.append(-previous)
                previous = 0
            spans[-1][1] += index - end
        else:
            spans.append([index if end is None else index - end, 0])
        spans[-1][1] += 1
        deltas.append(count - previous)
        previous = count
        end = index + 1
    return [(offset, size) for offset, size in spans], deltas
