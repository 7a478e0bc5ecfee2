"""The cache of what exporters derive from series' attributes: each series'
payload is made once while it lives, always the payload of its own
attributes (whatever the order of points, new tuples, or ids of freed ones),
and the cache holds only the series of the latest pass."""

from __future__ import annotations

import random

from ig_metrics.exporters.encoding.seriescache import ATTRIBUTES, PAYLOAD, SeriesCache
from ig_metrics.model.snapshot import Point


def attributes_of(index: int, tag: str = "a") -> tuple:
    return (("series", index), ("tag", tag))


def points(attributes: list[tuple]) -> tuple[Point, ...]:
    return tuple(Point(one, 1, 1) for one in attributes)


class Made:
    """A make() that records what it was asked for and returns a payload
    only these attributes have."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []

    def __call__(self, attributes: tuple) -> tuple:
        self.asked.append(attributes)
        return (repr(attributes), len(attributes))


def one_pass(cache: SeriesCache, by_key: dict[str, list[tuple]]) -> dict[str, list]:
    cache.begin()
    got = {key: cache.column(key, points(attributes), PAYLOAD)
           for key, attributes in by_key.items()}
    for key, attributes in by_key.items():
        entries = cache.entries(key, points(attributes))
        assert [entry[ATTRIBUTES] for entry in entries] == attributes
        assert got[key] == [repr(one) for one in attributes]
    cache.prune()
    return got


def test_each_series_is_made_once_while_it_lives():
    made = Made()
    cache = SeriesCache(made)
    series = [attributes_of(index) for index in range(50)]
    for _ in range(4):
        one_pass(cache, {"sent": series, "received": series, "latency": series[::5]})
    assert made.asked == series and len(cache) == 50


def test_series_that_vanish_are_dropped_after_the_pass():
    cache = SeriesCache(Made())
    series = [attributes_of(index) for index in range(50)]
    one_pass(cache, {"sent": series, "received": series})
    one_pass(cache, {"sent": series[:20], "received": series[10:30]})
    assert len(cache) == 30
    one_pass(cache, {"sent": series[:20]})          # a metric gone altogether
    assert len(cache) == 20
    one_pass(cache, {"sent": series[:20]})
    assert len(cache) == 20


def test_points_in_another_order_get_their_own_entries():
    made = Made()
    cache = SeriesCache(made)
    series = [attributes_of(index) for index in range(200)]
    rng = random.Random(7)
    for _ in range(5):
        shuffled = series[:]
        rng.shuffle(shuffled)
        one_pass(cache, {"sent": shuffled, "opened": series})
    assert len(made.asked) == 200 and len(cache) == 200


def test_equal_attributes_in_new_tuples_are_not_made_again():
    made = Made()
    cache = SeriesCache(made)
    rng = random.Random(3)
    for _ in range(4):
        fresh = [tuple(list(attributes_of(index))) for index in range(30)]
        one_pass(cache, {"sent": fresh})                  # in the order of the last pass
        rng.shuffle(fresh)
        one_pass(cache, {"sent": fresh})                  # in another: found by value
        assert len(cache) == 30
    assert len(made.asked) == 30


def test_ids_of_freed_tuples_never_bring_back_another_series_payload():
    """New series every pass, the old tuples freed: their memory (and ids) go
    to the new ones, which must not be taken for the old."""
    made = Made()
    cache = SeriesCache(made)
    for round_ in range(40):
        series = [attributes_of(index, tag=f"round {round_}") for index in range(25)]
        one_pass(cache, {"sent": series, "received": series[::-1]})
        del series
        assert len(cache) == 25
    assert len(made.asked) == 40 * 25
