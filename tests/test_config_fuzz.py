"""Hostile YAML never crashes.

A corpus generated with a fixed seed: the real profiles and gadget specs mutated
(bytes flipped, cut, control characters, invalid UTF-8, BOMs, tabs, odd line ends,
tags, document markers, duplicated or spliced lines, odd scalars) and hostile files
made from nothing (deep nesting at random depths, alias and merge bombs, nodes that
contain themselves, huge scalars and lines, wide mappings, files over the size limit,
random bytes). Every file is checked on its own, through the path `exporters
validate FILE` (and `gadgets describe DIR` for gadget.yaml) takes, and must give
either success or exit 2 whose every problem line is `FILE:LINE[:COL]: message`:
never a traceback, and within the time docs/reliability.md promises.

`python tests/test_config_fuzz.py` prints the counts by class (tracebacks, exit 2
without FILE:LINE, over 2 s), without pytest; `--before` stops each file at 20 s, for
an older tree that hangs (`PYTHONPATH=/path/to/old/checkout`).
"""

from __future__ import annotations

import functools
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = 0x1622                      # fixed: the corpus is the same on every run
N_PROFILES = 360
N_GADGETS = 100
# The bound is 2 s per file. The bound asserted is on the CPU time this
# process spends on the file (what other processes of a loaded machine do not
# inflate), plus a looser one on the wall clock and a tight one on the median.
PER_FILE_CPU_LIMIT = 2.0
PER_FILE_WALL_LIMIT = 6.0
MEDIAN_WALL_LIMIT = 0.25
OVERSIZED = 50 * 1024 * 1024       # one file this big: refused before it is read

PROFILE_SOURCES = sorted([*(ROOT / "ig_metrics" / "profiles").glob("*.yaml"),
                          *(ROOT / "tests" / "config" / "good").glob("*.yaml")])
GADGET_DIRS = sorted(path.parent
                     for base in (ROOT / "ig_metrics" / "gadgets", ROOT / "examples" / "gadgets")
                     for path in base.glob("*/gadget.yaml"))

Mutator = Callable[[random.Random, bytes], bytes]


# --- building blocks ------------------------------------------------------------------

def _lines(base: bytes) -> list[bytes]:
    return base.split(b"\n")


def _at(rng: random.Random, base: bytes, insert: bytes, count: int = 1) -> bytes:
    data = bytearray(base)
    for _ in range(count):
        position = rng.randint(0, len(data))
        data[position:position] = insert
    return bytes(data)


def _value_lines(lines: list[bytes]) -> list[int]:
    """Indexes of `key: value` lines (a value on the same line)."""
    return [i for i, line in enumerate(lines) if re.match(rb"^\s*[-\w.]+: +[^\s#]", line)]


def _replace_value(rng: random.Random, base: bytes, value: bytes) -> bytes:
    lines = _lines(base)
    candidates = _value_lines(lines)
    if not candidates:
        return base + b"\nx: " + value + b"\n"
    i = rng.choice(candidates)
    key = lines[i].split(b":", 1)[0]
    lines[i] = key + b": " + value
    return b"\n".join(lines)


def _key_lines(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if re.match(rb"^\s*[-\w.]+:", line)]


def _under_a_key(rng: random.Random, base: bytes, block: bytes) -> bytes:
    """`block` (text of a value, possibly of several lines) as the value of a random key,
    or a new key at the end."""
    lines = _lines(base)
    candidates = _key_lines(lines)
    if not candidates or rng.random() < 0.3:
        key = rng.choice([b"extra", b"profiles", b"exporters", b"metrics"])
        return base.rstrip(b"\n") + b"\n" + key + b": " + block.replace(b"\n", b"\n  ") + b"\n"
    i = rng.choice(candidates)
    indent = len(lines[i]) - len(lines[i].lstrip())
    key = lines[i].split(b":", 1)[0]
    pad = b"\n" + b" " * (indent + 2)
    lines[i] = key + b": " + block.replace(b"\n", pad)
    return b"\n".join(lines)


def _depth(rng: random.Random) -> int:
    return int(10 ** rng.uniform(0.5, 5.0))          # 3 .. 100,000 levels


def _name(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 8)))


CONTROL = ([c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)] + [0x7F]
           + [c for c in range(0x80, 0xA0) if c != 0x85] + [0xFFFE, 0xFFFF])
# Allowed, but line breaks or invisible to people: where lines are counted.
ODD_ALLOWED = [0x85, 0x2028, 0x2029, 0xFEFF, 0xA0, 0x200B, 0x1F600, 0x0301]
INVALID_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc3\x28", b"\xc0\xaf", b"\xe0\x80\xaf",
                b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
                b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3"]
TAGS = [b"!vault |\n  $ANSIBLE_VAULT;1.1;AES256", b"!!python/name:os.system",
        b"!!python/object/apply:os.system ['true']",
        b"!!binary aGVsbG8=", b"!!binary not*base64", b"!!timestamp 2001-13-45", b"!!timestamp x",
        b"!!int abc", b"!!int 12", b"!!float x", b"!!float 1", b"!!bool maybe", b"!!bool yes",
        b"!!null x", b"!!str 12", b"!!str {a: 1}", b"!!map x", b"!!map {a: 1}", b"!!seq x",
        b"!!seq [1]", b"!!set {a, b}", b"!!omap [a: 1]", b"!!pairs [a: 1]", b"!!merge x",
        b"!!value x", b"! 12", b"!<tag:yaml.org,2002:str> x", b"!<!> x", b"!Ref x", b"!Sub ${x}",
        b"!!python/tuple [1]", b"!!python/object:os.system {}", b"!e!x y", b"!!", b"!"]
ODD_SCALARS = [b"<<", b"=", b"~", b"null", b".nan", b"-.inf", b"1e99999", b"190:20:30",
               b"0o777", b"0b101", b"1_000", b"+12", b"0x" + b"f" * 20000, b"9" * 5000,
               b"-" + b"1" * 4400, b"2001-13-45", b"2001-02-30 25:61:61",
               b"2001-12-14t21:59:43.10-05:00",
               b"1:" * 2000 + b"1", b"'\\x1b[31mred'", b'"\\x1b[2J\\x1b[31mred"', b'"\\u0000"',
               b'"\\x85\\u2028"', b'"a\\nb"', b'"\\ud800"', b"yes", b"No", b"Off", b"? x", b"&a",
               b"*a", b"*undefined", b"&a *a", b"[", b"{", b"]", b"}", b"|", b">", b"|9", b">-+",
               b"@x", b"`x", b"%x", b"'", b'"', b"#", b"- x", b"? ", b": x", b"!", b"!!"]


# --- mutators: each takes the seeded generator and a real file ------------------------

def flip_bytes(rng, base):
    data = bytearray(base)
    for _ in range(rng.randint(1, 12)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def truncate(rng, base):
    return base[: rng.randint(0, len(base))]


def control_chars(rng, base):
    data = base
    for _ in range(rng.randint(1, 4)):
        char = chr(rng.choice(CONTROL if rng.random() < 0.8 else ODD_ALLOWED))
        data = _at(rng, data, char.encode("utf-8"))
    return data


def deep_nesting(rng, base):
    depth = _depth(rng)
    shape = rng.choice(["block-map", "block-seq", "compact-seq", "flow-seq", "flow-map",
                        "mixed-flow", "unclosed", "block-map-one-space"])
    if shape.startswith("block"):          # indentation grows with depth: bytes with its square
        depth = min(depth, 3000)
    if shape == "block-map":
        block = b"\n".join(b"  " * i + b"k%d:" % i for i in range(depth)) + b" x"
    elif shape == "block-map-one-space":
        block = b"\n".join(b" " * i + b"k:" for i in range(depth)) + b" x"
    elif shape == "block-seq":
        block = b"\n".join(b"  " * i + b"-" for i in range(depth)) + b" x"
    elif shape == "compact-seq":
        block = b"- " * depth + b"x"
    elif shape == "flow-seq":
        block = b"[" * depth + b"x" + b"]" * depth
    elif shape == "flow-map":
        block = b"{a: " * depth + b"x" + b"}" * depth
    elif shape == "mixed-flow":
        opens = [rng.choice([b"[", b"{k: "]) for _ in range(depth)]
        closes = [b"]" if opened == b"[" else b"}" for opened in reversed(opens)]
        block = b"".join(opens) + b"x" + b"".join(closes)
    else:
        block = b"[" * depth
    if rng.random() < 0.4:
        return block
    return _under_a_key(rng, base, b"\n" + block if shape.startswith("block") else block)


def huge_scalar(rng, base):
    size = int(10 ** rng.uniform(3, 6.3))            # 1 kB .. 2 MB
    style = rng.choice(["plain", "double", "single", "literal", "folded", "key"])
    body = bytes(rng.choice(b"abcxyz ") for _ in range(64)) * (size // 64 + 1)
    body = body[:size].strip() or b"x"
    if style == "plain":
        value = body
    elif style == "double":
        value = b'"' + body.replace(b"z", b"\\t") + b'"'
    elif style == "single":
        value = b"'" + body + b"'"
    elif style == "key":
        return base + b"\n" + body + b": 1\n"
    else:
        lines = [body[i:i + 70] for i in range(0, len(body), 70)]
        value = (b"|" if style == "literal" else b">") + b"\n" + b"\n".join(lines)
    return _under_a_key(rng, base, value)


def alias_bomb(rng, base):
    levels, fanout = rng.randint(3, 12), rng.randint(2, 12)
    kind = rng.choice(["seq", "map", "merge"])
    out = [b"bomb:"]
    if kind == "seq":
        out.append(b"  a0: &a0 [lol]")
        for level in range(1, levels + 1):
            out.append(b"  a%d: &a%d [%s]" % (level, level,
                                              b", ".join([b"*a%d" % (level - 1)] * fanout)))
    elif kind == "map":
        out.append(b"  a0: &a0 {k: lol}")
        for level in range(1, levels + 1):
            items = b", ".join(b"k%d: *a%d" % (i, level - 1) for i in range(fanout))
            out.append(b"  a%d: &a%d {%s}" % (level, level, items))
    else:
        out.append(b"  a0: &a0 {type: console, k0: lol}")
        for level in range(1, levels + 1):
            merges = b", ".join([b"*a%d" % (level - 1)] * fanout)
            out.append(b"  a%d: &a%d {<<: [%s], k%d: x}" % (level, level, merges, level))
    top = b"*a%d" % levels
    use = rng.choice([
        b"profiles:\n  p:\n    exporters: " + top,
        b"profiles:\n  p:\n    <<: " + top,
        b"exporters:\n  e:\n    <<: " + top,
        b"exporters:\n  e: " + top,
        b"metrics: " + top,
        b"hooks:\n  - <<: " + top,
    ])
    text = b"\n".join(out) + b"\n" + use + b"\n"
    return text if rng.random() < 0.5 else base.rstrip(b"\n") + b"\n" + text


def self_reference(rng, base):
    first, second = (_name(rng).encode() + b"%d" % i for i in (1, 2))
    shape = rng.choice([
        b"p: &@1 {<<: *@1}", b"p: &@1\n  <<: *@1", b"p: &@1 [*@1]", b"p: &@1 {x: *@1}",
        b"p: &@1 {b: &@2 {<<: [*@1]}}", b"p: &@1\n  q:\n    r: *@1",
        b"b: &@2 {x: 1}\np: &@1 {<<: [*@2, *@1]}", b"p: &@1 [[[*@1]]]",
        b"p: &@1 {k: [{<<: *@1}]}", b"&@1 p: *@1", b"p: &@1 {*@1 : x}",
        b"p: &@1\n  - <<: *@1", b"p: &@1\n  type: console\n  <<: *@1",
    ]).replace(b"@1", first).replace(b"@2", second)
    if rng.random() < 0.4:
        return _under_a_key(rng, base, b"\n" + shape)
    section = rng.choice([b"profiles", b"exporters", b"metrics", b"hooks", b"sources", b"x"])
    text = section + b":\n  " + shape.replace(b"\n", b"\n  ") + b"\n"
    return text if rng.random() < 0.5 else base.rstrip(b"\n") + b"\n" + text


def many_anchors(rng, base):
    count = int(10 ** rng.uniform(1, 4.5))
    lines = [b"anchors:"] + [b"  k%d: &a%d v%d" % (i, i, i) for i in range(count)]
    lines += [b"uses: [" + b", ".join(b"*a%d" % rng.randrange(count) for _ in range(count)) + b"]"]
    if rng.random() < 0.3:
        lines.append(b"dup: &a0 again")
    if rng.random() < 0.3:
        lines.append(b"undefined: *nope")
    return b"\n".join(lines) + b"\n" + (base if rng.random() < 0.5 else b"")


def duplicate_keys(rng, base):
    if rng.random() < 0.3:
        return base + b"\n" + base
    lines = _lines(base)
    for _ in range(rng.randint(1, 6)):
        lines.insert(rng.randint(0, len(lines)), rng.choice(lines))
    return b"\n".join(lines)


def byte_order_marks(rng, base):
    text = base.decode("utf-8", "replace")
    choice = rng.randrange(6)
    if choice == 0:
        return b"\xef\xbb\xbf" + base
    if choice == 1:
        return _at(rng, base, b"\xef\xbb\xbf", rng.randint(1, 3))
    if choice == 2:
        return text.encode("utf-16")
    if choice == 3:
        return text.encode(rng.choice(["utf-16-le", "utf-16-be"]))
    if choice == 4:
        return text.encode("utf-32")
    return b"\xef\xbb\xbf\xef\xbb\xbf" + base


def invalid_utf8(rng, base):
    if rng.random() < 0.2:
        return base.rstrip(b"\n") + b"\n# caf\xc3\xa9"[: -rng.randint(1, 2)]
    data = base
    for _ in range(rng.randint(1, 3)):
        data = _at(rng, data, rng.choice(INVALID_UTF8))
    return data


def tabs(rng, base):
    lines = _lines(base)
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(lines))
            stripped = lines[i].lstrip(b" ")
            lines[i] = b"\t" * rng.randint(1, 3) + stripped
        return b"\n".join(lines)
    return _at(rng, base, b"\t", rng.randint(1, 20))


def weird_tags(rng, base):
    data = base
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.6:
            tag = rng.choice(TAGS)
        elif roll < 0.8:
            tag = b"!" + _name(rng).encode() + b" x"
        else:
            tag = b"!!" + _name(rng).encode() + b"/" + _name(rng).encode() + b" x"
        data = _replace_value(rng, data, tag)
    if rng.random() < 0.3:
        data = rng.choice([b"%TAG !e! tag:evil.example,2024:\n---\n", b"%TAG ! !!python/\n---\n",
                           b"%TAG !! tag:other,2024:\n---\n", b"%FOO bar\n---\n"]) + data
    return data


def document_markers(rng, base):
    lines = _lines(base)
    for _ in range(rng.randint(1, 4)):
        lines.insert(rng.randint(0, len(lines)), rng.choice([
            b"---", b"...", b"--- |", b"--- >", b"--- x", b"%YAML 1.1", b"%YAML 1.2", b"%YAML 2.0",
            b"%YAML 1.1\n%YAML 1.1", b"--- !!map", b"--- &a", b"...\n---", b"---\n---"]))
    return b"\n".join(lines)


def long_lines(rng, base):
    length = int(10 ** rng.uniform(3, 6.2))
    kind = rng.choice([b"comment", b"spaces", b"value", b"flow", b"newlines", b"dashes"])
    if kind == b"comment":
        line = b"# " + b"c" * length
    elif kind == b"spaces":
        line = b"k: v" + b" " * length
    elif kind == b"value":
        line = b"k: " + b"v" * length
    elif kind == b"flow":
        line = b"k: [" + b"1, " * (length // 3) + b"1]"
    elif kind == b"newlines":
        line = b"\n" * length
    else:
        line = b"- " * (length // 2)
    lines = _lines(base)
    lines.insert(rng.randint(0, len(lines)), line)
    return b"\n".join(lines)


def odd_scalars(rng, base):
    data = base
    for _ in range(rng.randint(1, 4)):
        data = _replace_value(rng, data, rng.choice(ODD_SCALARS))
    return data


def line_ends(rng, base):
    new = rng.choice([b"\r\n", b"\r", "\x85".encode(), "\u2028".encode(), "\u2029".encode()])
    if rng.random() < 0.5:
        return base.replace(b"\n", new)
    lines = _lines(base)
    return b"".join(line + (new if rng.random() < 0.3 else b"\n") for line in lines)


def indicators(rng, base):
    data = base
    for _ in range(rng.randint(1, 8)):
        data = _at(rng, data, rng.choice([b"[", b"]", b"{", b"}", b":", b": ", b"- ", b"? ", b"&",
                                          b"*", b"!", b"|", b">", b"'", b'"', b"%", b"@", b"`",
                                          b"#", b",", b"\\", b"\n", b" ", b"<<: "]))
    return data


def splice(rng, base):
    other = _lines(rng.choice(PROFILE_SOURCES).read_bytes()) if rng.random() < 0.5 else _lines(base)
    lines = _lines(base)
    i, j = sorted(rng.randrange(len(other) + 1) for _ in range(2))
    k = rng.randrange(len(lines) + 1)
    lines[k:k] = other[i:j]
    if rng.random() < 0.3:
        rng.shuffle(lines)
    return b"\n".join(lines)


def wide(rng, base):
    count = int(10 ** rng.uniform(2, 4.7))
    kind = rng.choice(["exporters", "references", "keys", "headers", "list"])
    if kind == "exporters":
        body = b"exporters:\n" + b"".join(b"  e%d: {type: console}\n" % i for i in range(count))
    elif kind == "references":
        half = count // 2
        body = (b"exporters:\n" + b"".join(b"  e%d: {type: console}\n" % i for i in range(half))
                + b"profiles:\n  p:\n    exporters: ["
                + b", ".join(b"x%d" % i for i in range(half)) + b"]\n")
    elif kind == "keys":
        body = b"".join(b"k%d: %d\n" % (i, i) for i in range(count))
    elif kind == "headers":
        body = (b"exporters:\n  e:\n    type: otlp-http\n    endpoint: http://x:4318\n"
                b"    headers:\n" + b"".join(b"      h%d: v\n" % i for i in range(count)))
    else:
        body = b"metrics:\n" + b"".join(b"  - name: m%d\n" % i for i in range(count))
    return body


def oversized(rng, base):
    # Just over a megabyte or two: past any sane limit, yet cheap to write.
    size = rng.randint(1, 3) * 1024 * 1024 + rng.randint(0, 4096)
    return base + b"\n# " + b"x" * size + b"\n"


def random_bytes(rng, base):
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 4096)))


def random_yaml_chars(rng, base):
    alphabet = b"abc:-[]{}&*!|>'\"%#,?<= \n\t0123456789."
    return bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 2048)))


MUTATORS: dict[str, Mutator] = {
    "flip_bytes": flip_bytes, "truncate": truncate, "control_chars": control_chars,
    "deep_nesting": deep_nesting, "huge_scalar": huge_scalar, "alias_bomb": alias_bomb,
    "self_reference": self_reference, "many_anchors": many_anchors,
    "duplicate_keys": duplicate_keys, "byte_order_marks": byte_order_marks,
    "invalid_utf8": invalid_utf8, "tabs": tabs, "weird_tags": weird_tags,
    "document_markers": document_markers, "long_lines": long_lines,
    "odd_scalars": odd_scalars, "line_ends": line_ends, "indicators": indicators,
    "splice": splice, "wide": wide, "oversized": oversized, "random_bytes": random_bytes,
    "random_yaml_chars": random_yaml_chars,
}
# Mutators that may be stacked on another one's output (cheap, small changes).
STACKABLE = ["flip_bytes", "truncate", "control_chars", "duplicate_keys", "invalid_utf8", "tabs",
             "weird_tags", "document_markers", "odd_scalars", "line_ends", "indicators"]


@dataclass(frozen=True)
class Case:
    name: str          # "<index>-<mutators>"
    kinds: tuple[str, ...]
    data: bytes


def corpus(count: int, sources: list[Path], seed: int) -> list[Case]:
    """`count` hostile files: the mutators in turn (each class as often), on a random
    real file, sometimes with a second, small mutation on top."""
    rng = random.Random(seed)
    names = list(MUTATORS)
    cases = []
    for index in range(count):
        kinds = [names[index % len(names)]]
        if rng.random() < 0.25:
            kinds.append(rng.choice(STACKABLE))
        data = sources[rng.randrange(len(sources))].read_bytes()
        for kind in kinds:
            data = MUTATORS[kind](rng, data)
        cases.append(Case(f"{index:03d}-{'+'.join(kinds)}", tuple(kinds), data))
    return cases


@functools.cache
def profile_corpus() -> list[Case]:
    cases = corpus(N_PROFILES, PROFILE_SOURCES, SEED)
    # A file of 50 MB: refused before it is read, whatever it holds.
    cases.append(Case("huge-50MB", ("oversized",), b"# " + b"x" * OVERSIZED + b"\nexporters: {}\n"))
    return cases


@functools.cache
def gadget_corpus() -> list[Case]:
    return corpus(N_GADGETS, [path / "gadget.yaml" for path in GADGET_DIRS], SEED + 1)


# --- running a file as the CLI does -------------------------------------------------

@dataclass
class Outcome:
    case: Case
    exit_code: int
    output: str        # stdout + stderr
    traceback: bool
    cpu: float
    wall: float

    def problem_lines(self) -> list[str]:
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines


def write_profile(case: Case, directory: Path) -> Path:
    path = directory / f"{case.name}.yaml"
    path.write_bytes(case.data)
    return path


def write_gadget(case: Case, directory: Path) -> Path:
    folder = directory / case.name
    folder.mkdir()
    (folder / "gadget.yaml").write_bytes(case.data)
    for source in GADGET_DIRS:                 # the C source a spec names, where it exists
        for program in source.glob("*.bpf.c"):
            shutil.copy(program, folder / program.name)
    return folder


def run_in_process(args: list[str], case: Case) -> Outcome:
    from typer.testing import CliRunner

    from ig_metrics.cli import app

    cpu, wall = time.process_time(), time.perf_counter()
    result = CliRunner().invoke(app, args)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    output = result.stdout + result.stderr
    if crashed:
        output += f"\nTraceback (in process): {type(result.exception).__name__}: {result.exception}"
    return Outcome(case, result.exit_code, output, crashed or "Traceback" in output, cpu, wall)


def validate_profile(case: Case, directory: Path) -> tuple[Outcome, str]:
    path = write_profile(case, directory)
    return run_in_process(["exporters", "validate", str(path)], case), str(path)


def describe_gadget(case: Case, directory: Path) -> tuple[Outcome, str]:
    folder = write_gadget(case, directory)
    return run_in_process(["gadgets", "describe", str(folder)], case), str(folder / "gadget.yaml")


def located(outcome: Outcome, file: str, *, summary_last: bool) -> bool:
    """Whether every problem line of an exit-2 output is FILE:LINE[:COL]: message."""
    lines = outcome.problem_lines()
    if summary_last:
        lines = lines[:-1]
    pattern = re.compile(rf"^{re.escape(file)}:\d+(:\d+)?: ")
    return bool(lines) and all(pattern.match(line) for line in lines)


def failures(outcomes: list[tuple[Outcome, str]], *, summary_last: bool) -> list[str]:
    found = []
    for outcome, file in outcomes:
        name = outcome.case.name
        if outcome.traceback:
            found.append(f"{name}: traceback: {outcome.output.strip().splitlines()[-1][:300]}")
        elif outcome.exit_code not in (0, 2):
            found.append(f"{name}: exit {outcome.exit_code}: {outcome.output[:300]!r}")
        elif outcome.exit_code == 2 and not located(outcome, file, summary_last=summary_last):
            found.append(f"{name}: not FILE:LINE: {outcome.output[:300]!r}")
        elif outcome.cpu > PER_FILE_CPU_LIMIT or outcome.wall > PER_FILE_WALL_LIMIT:
            found.append(f"{name}: took {outcome.cpu:.2f}s CPU, {outcome.wall:.2f}s wall")
    return found


# --- the tests ------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IG_METRICS_PROFILES_DIR", raising=False)
    monkeypatch.setenv("COLUMNS", "250")


def test_the_corpus_is_the_same_every_time() -> None:
    first, second = corpus(40, PROFILE_SOURCES, SEED), corpus(40, PROFILE_SOURCES, SEED)
    assert [case.data for case in first] == [case.data for case in second]
    assert {kind for case in profile_corpus() for kind in case.kinds} == set(MUTATORS)


def test_hostile_profiles_give_success_or_file_line(tmp_path: Path) -> None:
    outcomes = [validate_profile(case, tmp_path) for case in profile_corpus()]
    assert failures(outcomes, summary_last=True) == []
    walls = [outcome.wall for outcome, _ in outcomes]
    assert statistics.median(walls) < MEDIAN_WALL_LIMIT
    # Both outcomes occur: the corpus is not all noise, nor all harmless.
    assert {outcome.exit_code for outcome, _ in outcomes} == {0, 2}


def test_hostile_gadget_specs_give_success_or_file_line(tmp_path: Path) -> None:
    outcomes = [describe_gadget(case, tmp_path) for case in gadget_corpus()]
    assert failures(outcomes, summary_last=False) == []
    assert statistics.median(outcome.wall for outcome, _ in outcomes) < MEDIAN_WALL_LIMIT
    assert {outcome.exit_code for outcome, _ in outcomes} == {0, 2}


def test_no_traceback_reaches_the_real_stderr(tmp_path: Path) -> None:
    """A few of the worst, through the installed console script: what a user sees."""
    script = Path(sys.executable).parent / "ig-metrics"
    worst = [case for case in profile_corpus()
             if case.kinds[0] in ("deep_nesting", "self_reference", "alias_bomb", "weird_tags",
                                  "control_chars", "invalid_utf8", "odd_scalars")]
    chosen = [*random.Random(SEED).sample(worst, 7), profile_corpus()[-1]]   # and the 50 MB one

    def run(case: Case) -> tuple[Case, Path, subprocess.CompletedProcess, float]:
        path = write_profile(case, tmp_path)
        started = time.perf_counter()
        result = subprocess.run([str(script), "exporters", "validate", str(path)],
                                capture_output=True, text=True, timeout=60)
        return case, path, result, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=4) as pool:
        for case, path, result, took in pool.map(run, chosen):
            assert "Traceback" not in result.stderr + result.stdout, case.name
            assert result.returncode in (0, 2), (case.name, result.stderr)
            if result.returncode == 2:
                assert re.match(rf"^{re.escape(str(path))}:\d+(:\d+)?: ", result.stdout), \
                    (case.name, result.stdout[:300])
            assert took < 4 * PER_FILE_WALL_LIMIT, case.name   # the interpreter's start, 4 at once


# --- counts by class, for the issue ---------------------------------------------------

def _report(before: bool) -> None:
    import signal
    import tempfile

    def alarm(signum, frame):
        raise TimeoutError("over 20 s")

    signal.signal(signal.SIGALRM, alarm)
    for title, cases, run, summary_last in (
            ("profiles (exporters validate FILE)", profile_corpus(), validate_profile, True),
            ("gadget.yaml (gadgets describe DIR)", gadget_corpus(), describe_gadget, False)):
        counts: dict[str, list[int]] = {}
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            outcomes = []
            for case in cases:
                signal.alarm(20 if before else 0)
                outcome, file = run(case, Path(scratch))
                signal.alarm(0)
                outcomes.append((outcome, file))
                row = counts.setdefault(case.kinds[0], [0, 0, 0, 0, 0])
                row[0] += 1
                timed_out = "TimeoutError" in outcome.output
                if outcome.traceback and not timed_out:
                    row[1] += 1
                elif outcome.exit_code == 2 and not located(outcome, file,
                                                            summary_last=summary_last):
                    row[2] += 1
                if outcome.cpu > PER_FILE_CPU_LIMIT or timed_out:
                    row[3] += 1
                row[4] += outcome.exit_code == 0
            took = time.perf_counter() - started
        print(f"\n{title}: {len(cases)} files in {took:.1f}s")
        print(f"{'class':20s} {'files':>5s} {'trace':>5s} {'noline':>6s} {'slow':>5s} {'ok':>4s}")
        for kind, row in sorted(counts.items()):
            print(f"{kind:20s} {row[0]:5d} {row[1]:5d} {row[2]:6d} {row[3]:5d} {row[4]:4d}")
        total = [sum(column) for column in zip(*counts.values())]
        print(f"{'total':20s} {total[0]:5d} {total[1]:5d} {total[2]:6d} {total[3]:5d} "
              f"{total[4]:4d}")
        walls = sorted(outcome.wall for outcome, _ in outcomes)
        print(f"wall per file: median {statistics.median(walls):.3f}s, max {walls[-1]:.2f}s; "
              f"CPU max {max(outcome.cpu for outcome, _ in outcomes):.2f}s")
        for line in failures(outcomes, summary_last=summary_last)[:400]:
            print("  " + line[:220])


if __name__ == "__main__":
    _report(before="--before" in sys.argv)
