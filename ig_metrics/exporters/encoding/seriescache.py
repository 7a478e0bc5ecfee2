"""What an exporter derives from a series' attributes (its OTLP KeyValue
bytes, its Prometheus label string), made once and kept while the series
lives. The sampler hands over the same attributes tuple for a series at every
tick, and its series in the same order: a metric whose points have the
attributes of the last pass costs one comparison of two lists, and a series
is otherwise found by its tuple's identity, without hashing its contents."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter, itemgetter
from typing import Any

from ig_metrics.model.snapshot import Attributes, Point

# An entry is a list: [the attributes tuple, the generation that last used it,
# then what `make` returned, flattened]; `column` takes one field of each.
ATTRIBUTES, GENERATION, PAYLOAD = 0, 1, 2
_ATTRIBUTES_OF = attrgetter("attributes")


class SeriesCache:
    """`make(attributes)`, remembered for the series of the latest pass.

    A pass (`begin` ... `prune`) asks for the entries of each key's points (a
    key names a metric, or a piece of one). An entry holds its tuple, so the
    id it is filed under cannot be taken by another object while it is kept.
    An equal tuple that is a new object (a series whose attributes are built
    anew each tick) is found by value and filed under its own id. Entries no
    key of a pass used are dropped at its end. One pass at a time: the caller
    serialises them.
    """

    def __init__(self, make: Callable[[Attributes], tuple[Any, ...]]) -> None:
        self.make = make
        self._by_id: dict[int, list[Any]] = {}
        # The entry last filed for each value; a new tuple equal to one seen
        # shares its payload.
        self._by_value: dict[Attributes, list[Any]] = {}
        self._generation = 0
        # By key: its points' attributes, their entries in order, and columns
        # of those, in the last pass and in this one.
        self._last: dict[Hashable, _Series] = {}
        self._this: dict[Hashable, _Series] = {}
        self._looked_up = False       # a key of this pass is not as in the last

    def begin(self) -> None:
        self._generation += 1
        self._this = {}
        self._looked_up = False

    def entries(self, key: Hashable, points: Sequence[Point]) -> list[list[Any]]:
        """The entries of the points' attributes, in order."""
        return self._series(key, points).entries

    def column(self, key: Hashable, points: Sequence[Point], index: int) -> list[Any]:
        """[entry[index] for entry in entries(key, points)], kept with them."""
        series = self._series(key, points)
        column = series.columns.get(index)
        if column is None:
            column = series.columns[index] = list(map(itemgetter(index), series.entries))
        return column

    def _series(self, key: Hashable, points: Sequence[Point]) -> _Series:
        attributes = list(map(_ATTRIBUTES_OF, points))
        series = self._this.get(key) or self._last.get(key)
        if series is None or series.attributes != attributes:
            self._looked_up = True
            get, lookup = self._by_id.get, self._lookup
            series = _Series(attributes, [get(id(one)) or lookup(one) for one in attributes])
        self._this[key] = series
        return series

    def _lookup(self, attributes: Attributes) -> list[Any]:
        known = self._by_value.get(attributes)
        payload = known[PAYLOAD:] if known is not None else self.make(attributes)
        entry = [attributes, self._generation, *payload]
        self._by_id[id(attributes)] = entry
        self._by_value[attributes] = entry
        return entry

    def prune(self) -> None:
        """Drops the entries this pass did not use. Nothing to do when every
        key is as in the last pass: its entries are all that is kept."""
        last, this = self._last, self._this
        self._last, self._this = this, {}
        if not self._looked_up and this.keys() == last.keys():
            return
        generation = self._generation
        for series in this.values():
            for entry in series.entries:
                entry[GENERATION] = generation
        by_value = self._by_value
        kept: dict[int, list[Any]] = {}
        for key, entry in self._by_id.items():
            if entry[GENERATION] == generation:
                kept[key] = entry
            elif by_value.get(entry[ATTRIBUTES]) is entry:    # not taken over by an equal tuple
                del by_value[entry[ATTRIBUTES]]
        self._by_id = kept

    def __len__(self) -> int:
        return len(self._by_id)


class _Series:
    """One key's points' attributes, their entries, and columns of those."""

    __slots__ = ("attributes", "entries", "columns")

    def __init__(self, attributes: list[Attributes], entries: list[list[Any]]) -> None:
        self.attributes = attributes
        self.entries = entries
        self.columns: dict[int, list[Any]] = {}
