"""A snapshot written straight to Prometheus text (classic or OpenMetrics): the
bytes prometheus_client's encoders make of the collector's families, with each
series' label string made once and kept while it lives, and names and
HELP/TYPE/UNIT lines taken from the library's own output."""

from __future__ import annotations

import copy
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, chain, repeat
from operator import attrgetter
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ig_metrics.exporters.encoding.seriescache import PAYLOAD, SeriesCache
from ig_metrics.exporters.prometheus import naming
from ig_metrics.exporters.prometheus.families import check_buckets
from ig_metrics.exporters.prometheus.proto import CONTENT_TYPE as PROTOBUF_CONTENT_TYPE
from ig_metrics.exporters.prometheus.proto import wants_protobuf
from ig_metrics.model.snapshot import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    Attributes,
    HistogramValue,
    MetricData,
)

# floatToGoString gives "<n>.0" for these integers (and switches to exponents
# from 1e6 on): the common case is written without its float conversions.
_PLAIN_INTS = range(0, 1_000_000)
_INTS_ONLY = {int}
_EXACT_INTS = 2 ** 53                            # floats are exact up to here (see _go_int)
_PLAIN_INT_LINE = b"%b%b %d.0\n".__mod__        # (name, labels, value) -> line
_LINE = b"%b%b %b\n".__mod__                    # (name, labels, value's text) -> line
_VALUE = attrgetter("value")
# The text is made and sent in pieces of about this size: one piece of 78 MB
# (100k series) costs more to allocate, page by page, than to write.
_CHUNK_BYTES = 128 * 1024
_NUMBER_LINES_PER_CHUNK = 1024
# prometheus_client compresses at gzip's level 9: for 100k series (78 MB of
# text) that costs 1.5 s of CPU per scrape, level 1 0.2 s for a body 27%
# larger (6.0 MB instead of 4.7). Prometheus decompresses either.
GZIP_LEVEL = 1
# The library's default name escaping (a TextFormat's field `openmetrics` hides
# the module in the class body)
UNDERSCORES = openmetrics.UNDERSCORES


@dataclass(frozen=True, slots=True)
class TextFormat:
    """What prometheus_client's choose_encoder picked for a scrape."""

    openmetrics: bool
    escaping: str = UNDERSCORES
    version: str = "1.0.0"         # OpenMetrics only

    def generate(self, families: list[Metric]) -> str:
        """The library's own text for `families`, without OpenMetrics' # EOF."""
        registry = _Families(families)
        if self.openmetrics:
            text: bytes = openmetrics.generate_latest(registry, escaping=self.escaping,
                                                      version=self.version)
            return text.decode().removesuffix("# EOF\n")
        body: bytes = exposition.generate_latest(registry, escaping=self.escaping)
        return body.decode()


class _Families:
    """What the library's encoders iterate: anything with collect()."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def text_format(encoder: Callable[..., bytes]) -> TextFormat | None:
    """The format of an encoder from prometheus_client's choose_encoder (the
    function or a functools.partial of it), or None for one not written here."""
    function = getattr(encoder, "func", encoder)
    keywords = getattr(encoder, "keywords", {})
    escaping = keywords.get("escaping", openmetrics.UNDERSCORES)
    if function is exposition.generate_latest:
        return TextFormat(False, escaping)
    if function is openmetrics.generate_latest:
        return TextFormat(True, escaping, keywords.get("version", "1.0.0"))
    return None


def go_float(value: float) -> str:
    """floatToGoString, the library's rendering of a sample value."""
    if value.__class__ is int and value in _PLAIN_INTS:
        return f"{value}.0"
    text: str = floatToGoString(value)
    return text


def _escape_value(value: str) -> str:
    # How both of the library's encoders escape a label value.
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@lru_cache(maxsize=4096)
def _label_layout(attribute_names: tuple[str, ...], escaping: str,
                  ) -> tuple[naming.LabelPlan, tuple[tuple[int, str], ...], int, int]:
    """How the labels of series with these attribute names are written: their
    plan (naming.py), the labels in the order the encoders write them (sorted
    by name) as (index in the plan, escaped name), and the slice of them a
    bucket's own `le` goes between (it replaces a label of that name)."""
    plan = naming.label_plan(attribute_names)
    order = sorted(range(len(plan.names)), key=plan.names.__getitem__)
    names = [plan.names[index] for index in order]
    escaped = [openmetrics.escape_label_name(name, escaping) for name in names]
    before = bisect_left(names, "le")
    after = before + 1 if names[before:before + 1] == ["le"] else before
    return plan, tuple(zip(order, escaped)), before, after


def _label_strings(escaping: str) -> Callable[[Attributes], tuple[bytes, bytes, bytes]]:
    """How a series' labels are written in `escaping`: b'{a="1",b="2"}' (b""
    without any), and what comes before and after a bucket's `le` label."""
    def labels(attributes: Attributes) -> tuple[bytes, bytes, bytes]:
        plan, order, before, after = _label_layout(tuple(key for key, _ in attributes),
                                                   escaping)
        values = plan.values(attributes)
        texts = [f'{name}="{_escape_value(values[index])}"' for index, name in order]
        plain = "{" + ",".join(texts) + "}" if texts else ""
        return (plain.encode(), ("{" + "".join(text + "," for text in texts[:before])).encode(),
                ("".join("," + text for text in texts[after:]) + "}").encode())
    return labels


class TextRenderer:
    """Writes snapshots as scrape text, keeping label strings between them.
    One rendering at a time (the caller holds a lock): the caches are pruned
    after each."""

    def __init__(self) -> None:
        self._labels: dict[str, SeriesCache] = {}    # by escaping

    def render(self, served: list[tuple[MetricData, Metric]], info: Metric | None,
               fmt: TextFormat) -> list[bytes] | None:
        """The text of `info` (target_info) and the families of `served` (each
        metric with its family, without samples) in `fmt`, in pieces of about
        _CHUNK_BYTES; None where a name needs a form this module does not write
        (the library's then)."""
        chunks: list[bytes] = [fmt.generate([info]).encode()] if info is not None else []
        cache = self._labels.get(fmt.escaping)
        if cache is None:
            cache = self._labels[fmt.escaping] = SeriesCache(_label_strings(fmt.escaping))
        cache.begin()
        for data, family in served:
            probed = _probe(family, _sample_names(data), fmt)
            if probed is None:
                return None
            header, names = probed
            chunks.append(header.encode())
            if data.info.kind == HISTOGRAM:
                _histogram_lines(data, names, fmt.escaping, cache, chunks)
            else:
                _number_lines(data, names[0], cache, chunks)
        cache.prune()
        if fmt.openmetrics:
            chunks.append(b"# EOF\n")
        return chunks


def gzipped(chunks: list[bytes]) -> list[bytes]:
    """`chunks` as one gzip stream, in pieces. Level 1: see GZIP_LEVEL."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    compressed = [compressor.compress(chunk) for chunk in chunks]
    compressed.append(compressor.flush())
    return compressed


def _sample_names(data: MetricData) -> list[str]:
    """The names of a family's samples, as families.fill_family writes them."""
    info = data.info
    name = naming.prometheus_metric_name(info.name, info.unit, info.kind)
    if info.kind == HISTOGRAM:
        return [f"{name}_bucket", f"{name}_count", f"{name}_sum"]
    if info.kind in (COUNTER, GAUGE):
        return [name]
    raise ValueError(f"metric {info.name}: unknown kind {info.kind!r}")


def _probe(family: Metric, names: list[str], fmt: TextFormat) -> tuple[str, list[str]] | None:
    """The library's header lines for `family`, and how it writes each sample
    name in a line (rendered for one label-less sample of each name)."""
    probe = copy.copy(family)
    probe.samples = [Sample(name, {}, 0) for name in names]
    lines = fmt.generate([probe]).splitlines(keepends=True)
    header, samples = lines[:-len(names)], lines[-len(names):]
    escaped = [line.removesuffix(" 0.0\n") for line in samples]
    # A name quoted inside the braces (UTF-8 names) is not written here.
    if any(not line.endswith(" 0.0\n") or "{" in name or " " in name
           for line, name in zip(samples, escaped)):
        return None
    return "".join(header), escaped


def _number_lines(data: MetricData, name: str, cache: SeriesCache, chunks: list[bytes]) -> None:
    """One line per point, the bulk of a scrape: made by C code alone (map,
    zip, %) when every value is an int under a million, as counters' mostly
    are; with one call per value written otherwise."""
    points = data.points
    labels = cache.column(data.info.name, points, PAYLOAD)    # see _label_strings
    values = list(map(_VALUE, points))
    name_bytes = name.encode()
    ints = bool(values) and set(map(type, values)) == _INTS_ONLY and min(values) >= 0
    for start in range(0, len(points), _NUMBER_LINES_PER_CHUNK):
        end = start + _NUMBER_LINES_PER_CHUNK
        some = values[start:end]
        if ints and max(some) in _PLAIN_INTS:
            lines = map(_PLAIN_INT_LINE, zip(repeat(name_bytes), labels[start:end], some))
        else:
            texts = ([b"%d.0" % value if value in _PLAIN_INTS else _go_int(value)
                      for value in some] if ints and max(some) <= _EXACT_INTS
                     else [go_float(value).encode() for value in some])
            lines = map(_LINE, zip(repeat(name_bytes), labels[start:end], texts))
        chunks.append(b"".join(lines))


def _go_int(value: int) -> bytes:
    """floatToGoString of an int from a million to 2**53 (where floats are
    exact and Python's repr positional): its digits, trailing zeros dropped,
    as d.ddde+XX."""
    digits = b"%d" % value
    mantissa = digits.rstrip(b"0")
    if len(mantissa) > 1:
        return b"%b.%be+%02d" % (mantissa[:1], mantissa[1:], len(digits) - 1)
    return b"%be+%02d" % (mantissa, len(digits) - 1)


def _histogram_lines(data: MetricData, names: list[str], escaping: str, cache: SeriesCache,
                     chunks: list[bytes]) -> None:
    """Per point: a bucket line per bound and +Inf (cumulative counts), _count
    and _sum, from one %-format per metric (the labels are arguments, never
    part of the format): one for cumulative counts that are all plain ints,
    written by the format itself, one for any others."""
    info = data.info
    bucket, count, sum_ = (_literal(name) for name in names)
    le = _literal(openmetrics.escape_label_name("le", escaping))
    bounds = [_literal(_escape_value(floatToGoString(bound))) for bound in info.bounds]
    tail = f'{bucket}%b{le}="+Inf"%b %b\n{count}%b %b\n{sum_}%b %b\n'.encode()
    plain_ints = "".join(f'{bucket}%b{le}="{bound}"%b %d.0\n' for bound in bounds).encode() + tail
    any_values = "".join(f'{bucket}%b{le}="{bound}"%b %b\n' for bound in bounds).encode() + tail
    buckets = len(bounds)
    per_chunk = max(1, _CHUNK_BYTES // len(plain_ints))
    points = data.points
    entries = cache.entries(info.name, points)
    for start in range(0, len(points), per_chunk):
        lines: list[bytes] = []
        for point, (_, _, plain, before, after) in zip(points[start:start + per_chunk],
                                                       entries[start:start + per_chunk]):
            value = point.value
            if not isinstance(value, HistogramValue):
                # What the library's encoders would fail on, failed the same way.
                raise TypeError(f"metric {info.name}: a histogram point without a "
                                f"HistogramValue")
            check_buckets(info, value)
            counts = value.counts[:buckets]
            running = list(accumulate(counts))
            cumulative: list[int] | list[bytes]
            if not counts or (running[-1] in _PLAIN_INTS and min(counts) >= 0
                              and set(map(type, counts)) == _INTS_ONLY):
                template, cumulative = plain_ints, running
            else:
                template, cumulative = any_values, [go_float(total).encode() for total in running]
            total = go_float(value.count).encode()
            lines.append(template % (
                *chain.from_iterable(zip(repeat(before, buckets), repeat(after, buckets),
                                         cumulative)),
                before, after, total, plain, total, plain, go_float(value.sum).encode()))
        chunks.append(b"".join(lines))


def _literal(text: str) -> str:
    """`text` inside a %-format."""
    return text.replace("%", "%%")


def make_app(render: Callable[[TextFormat, bool], list[bytes] | None],
             library_app: WSGIApplication,
             protobuf: Callable[[bool], list[bytes]] | None = None,
             scraped: Callable[[str], None] | None = None) -> WSGIApplication:
    """A WSGI app: a GET of all metrics in a format `render` writes is answered
    with its text (gzipped when accepted: `render(fmt, True)`) and the headers
    prometheus_client's app would send; one whose Accept prefers the protobuf
    exposition with what `protobuf(compress)` writes; anything else (OPTIONS, a
    filter by name[], another format) is left to `library_app`,
    prometheus_client's own. `scraped` hears the address of each full scrape
    answered."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (environ["REQUEST_METHOD"] != "GET" or environ["PATH_INFO"] == "/favicon.ico"
                or "name[]" in parse_qs(environ.get("QUERY_STRING", ""))):
            return library_app(environ, start_response)
        compress = exposition.gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", ""))
        chunks: list[bytes] | None
        if protobuf is not None and wants_protobuf(environ.get("HTTP_ACCEPT")):
            chunks, content_type = protobuf(compress), PROTOBUF_CONTENT_TYPE
        else:
            encoder, content_type = exposition.choose_encoder(environ.get("HTTP_ACCEPT", ""))
            fmt = text_format(encoder)
            chunks = render(fmt, compress) if fmt is not None else None
        if chunks is None:
            return library_app(environ, start_response)
        headers = [("Content-Type", content_type)]
        if compress:
            headers.append(("Content-Encoding", "gzip"))
        # Set here: the server only counts a body given in one piece.
        headers.append(("Content-Length", str(sum(map(len, chunks)))))
        start_response("200 OK", headers)
        if scraped is not None:
            scraped(environ.get("REMOTE_ADDR", ""))
        return chunks

    return app
