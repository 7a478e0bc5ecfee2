"""Counts that left a series key's exported point (the key expired, or its
attributes changed) while other keys still add to that point: kept there, so
that a cumulative point summed from several keys never goes down. A point
with no key adding to it any more stops, as any expired series does, and its
kept counts go with it; but counts a key left there because its attributes
changed, read in that very tick, are first exported as the series' final
value for a while (`linger`: long enough for every exporter, the slowest
included, to take a snapshot with it), so that none is lost."""

from __future__ import annotations

from ig_metrics.model.snapshot import Attributes, HistogramValue, Point


def sum_values(a, b):
    """Two counter values, or two histograms with the same bounds, added."""
    if isinstance(a, HistogramValue):
        return HistogramValue(tuple(x + y for x, y in zip(a.counts, b.counts)), a.sum + b.sum,
                              a.count + b.count)
    return a + b


def sum_points(a: Point, b: Point) -> Point:
    """Two points with the same attributes as one (the earliest start is the sum's)."""
    return Point(a.attributes, sum_values(a.value, b.value), min(a.start_time_ns, b.start_time_ns))


def add_point(points: dict[Attributes, Point], point: Point) -> None:
    """`point` summed into the point with the same attributes."""
    other = points.get(point.attributes)
    points[point.attributes] = point if other is None else sum_points(other, point)


class RetainedCounts:
    """Per metric: exported attributes -> the counts keys left there."""

    def __init__(self) -> None:
        self._points: dict[str, dict[Attributes, Point]] = {}
        # (metric, attributes) -> until when (ns) it is exported without a key.
        self._lingering: dict[tuple[str, Attributes], int] = {}

    def __len__(self) -> int:
        return sum(len(points) for points in self._points.values())

    def keep(self, metric: str, point: Point, *, linger_until: int = 0) -> None:
        """Keeps `point`'s counts for its attributes; exported on their own
        (no key adding to them) until `linger_until` (ns; 0: not at all)."""
        add_point(self._points.setdefault(metric, {}), point)
        if linger_until:
            entry = (metric, point.attributes)
            self._lingering[entry] = max(self._lingering.get(entry, 0), linger_until)

    def holds(self, metric: str) -> bool:
        """Whether anything is kept for `metric`."""
        return bool(self._points.get(metric))

    def add_to(self, metric: str, live: dict[Attributes, Point], now: int) -> None:
        """Adds what is kept for `metric` to the points keys made this tick,
        and what lingers on its own; forgets the rest."""
        kept = self._points.get(metric)
        if not kept:
            return
        for attributes in list(kept):
            if attributes in live:
                add_point(live, kept[attributes])
                continue
            entry = (metric, attributes)
            until = self._lingering.get(entry)
            if until is not None and now <= until:
                add_point(live, kept[attributes])     # the series' final value
                continue
            del kept[attributes]
            self._lingering.pop(entry, None)
