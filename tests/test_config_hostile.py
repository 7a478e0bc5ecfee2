"""What bad input gets (docs/reliability.md): each kind of hostile YAML the bounded
reader refuses, with its exact place and message, through `exporters validate` and
`gadgets describe`; the fuzz test (test_config_fuzz.py) covers the rest at random."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ig_metrics.catalog.loading import load_catalog
from ig_metrics.cli import app
from ig_metrics.config.model import Problem
from ig_metrics.config.suggest import closest
from ig_metrics.config.yamlnodes import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
    TAGS_TAKEN,
    position_of,
)

EXAMPLE_GADGET = Path(__file__).parent.parent / "examples" / "gadgets" / "signals"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IG_METRICS_PROFILES_DIR", raising=False)
    monkeypatch.setenv("COLUMNS", "250")


def validate(tmp_path: Path, data: bytes | str, name: str = "x.yaml") -> tuple[int, list[str]]:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    result = CliRunner().invoke(app, ["exporters", "validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    prefix = f"{tmp_path}/"
    return result.exit_code, [line.removeprefix(prefix) for line in result.stdout.splitlines()[:-1]]


def test_control_character_at_its_line_and_column_with_its_code_point(tmp_path: Path) -> None:
    text = "exporters:\n  e:\n    type: console\n    description: \"ab\x86c\"\n"
    assert validate(tmp_path, text) == (
        2, ["x.yaml:4:21: control character U+0086 is not allowed in YAML"])


def test_every_control_character_is_reported_up_to_a_count(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, "a: 1\x00\nb: \x0c2\n\x1c\n")
    assert (code, lines) == (2, ["x.yaml:1:5: control character U+0000 is not allowed in YAML",
                                 "x.yaml:2:4: control character U+000C is not allowed in YAML",
                                 "x.yaml:3:1: control character U+001C is not allowed in YAML"])
    code, lines = validate(tmp_path, "a: b\x01\n" * 100)
    assert len(lines) == 21 and lines[-1] == (
        "x.yaml:21:5: more characters YAML does not allow, from here on")


def test_lines_are_counted_as_yaml_counts_them() -> None:
    # CR LF is one break; CR, NEL, LS and PS are breaks too.
    assert position_of("a\r\nb\rc\x85d\u2028e\u2029f", 11) == (6, 1)
    assert position_of("ab\ncd", 4) == (2, 2)


def test_invalid_utf8_at_its_line_and_column(tmp_path: Path) -> None:
    assert validate(tmp_path, b"exporters:\n  e:\n    type: cons\xc3\xa9\xffole\n") == (
        2, ["x.yaml:3:16: not UTF-8 text: byte 0xFF (invalid start byte)"])


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_and_utf32_files_are_named_as_such(tmp_path: Path, encoding: str) -> None:
    code, lines = validate(tmp_path, "exporters: {}\n".encode(encoding))
    assert code == 2 and len(lines) == 1
    assert ("UTF-16" in lines[0] or "UTF-32" in lines[0]) and lines[0].endswith("save it as UTF-8")


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    assert validate(tmp_path, b"\xef\xbb\xbfexporters: {}\n") == (0, [])


@pytest.mark.parametrize(("value", "message"), [
    ("!vault |\n      $ANSIBLE_VAULT;1.1;AES256", "4:18: unknown tag !vault"),
    ("!!python/name:os.system", "4:18: unknown tag !!python/name:os.system"),
    ("!!python/object/apply:os.system ['true']",
     "4:18: unknown tag !!python/object/apply:os.system"),
    ("!Ref x", "4:18: unknown tag !Ref"),
    ("!!binary aGk=", "4:18: unsupported tag !!binary"),
    ("!!map x", "4:18: tag !!map cannot be put on a scalar"),
    ("!!str {a: 1}", "4:18: tag !!str cannot be put on a mapping"),
])
def test_tags_other_than_plain_ones_are_refused_where_written(tmp_path: Path, value: str,
                                                               message: str) -> None:
    text = f"exporters:\n  e:\n    type: console\n    description: {value}\n"
    assert validate(tmp_path, text) == (
        2, [f"x.yaml:{message}; the tags ig-metrics reads are {TAGS_TAKEN}"])


def test_plain_tags_are_read(tmp_path: Path) -> None:
    text = ("exporters:\n  e: !!map\n    type: !!str console\n    description: ! text\n"
            "profiles: {p: {exporters: !!seq [e], interval: !!str 10s}}\n")
    assert validate(tmp_path, text) == (0, [])


@pytest.mark.parametrize(("value", "message"), [
    ("2001-13-45",
     "'2001-13-45' is not a date (month must be in 1..12); quote it to keep it as text"),
    ("!!int abc", "'abc' is not an integer"),
    ("!!bool maybe", "'maybe' is not true or false"),
    ("9" * 5000, f"'{'9' * 37}...' is too long for a number (more than 100 characters); "
                 "quote it to keep it as text"),
    ("1:" * 130_000 + "1", f"'{'1:' * 18}1...' is too long for a number (more than 100 "
                           "characters); quote it to keep it as text"),
    ("0x" + "f" * 80, f"integer '0x{'f' * 35}...' is too large (more than 256 bits)"),
])
def test_scalars_that_do_not_convert_are_refused(tmp_path: Path, value: str, message: str) -> None:
    text = f"exporters:\n  e:\n    type: console\n    description: {value}\n"
    assert validate(tmp_path, text) == (2, [f"x.yaml:4:18: {message}"])


def test_merge_and_value_indicators_away_from_a_key_are_text(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, "exporters:\n  e:\n    type: <<\n")
    assert code == 2 and "unknown exporter type '<<'" in lines[0]


@pytest.mark.parametrize("shape", [
    "p: &a {<<: *a}", "p: &a\n    <<: *a", "p: &a [*a]", "p: &a {x: {y: [*a]}}",
    "p: &a {b: &b {<<: [*a]}}",
])
def test_a_node_that_contains_itself_is_refused(tmp_path: Path, shape: str) -> None:
    code, lines = validate(tmp_path, f"profiles:\n  {shape}\n")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("x.yaml:")
    assert lines[0].endswith("alias *a is inside the node it names (&a, line 2): a node "
                             "cannot contain itself")


@pytest.mark.parametrize(("text", "where"), [
    ("x: " + "[" * 100_000 + "]" * 100_000, "1:67"),
    ("x: " + "{a: " * 50_000 + "1" + "}" * 50_000, "1:253"),
    ("- " * 2000 + "x", "1:129"),
    ("\n".join(" " * i + "k:" for i in range(700)) + " x", "64:64"),
])
def test_deep_nesting_is_refused_at_the_level_past_the_limit(tmp_path: Path, text: str,
                                                             where: str) -> None:
    assert validate(tmp_path, text + "\n") == (
        2, [f"x.yaml:{where}: nested more than {MAX_DEPTH} levels deep; a file may nest at "
            f"most {MAX_DEPTH} levels"])


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    assert code == 2 and lines == ["x.yaml:1: unknown top-level key 'x'. Allowed keys: "
                                   "exporters, profiles"]


def test_an_alias_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    started = time.process_time()
    code, out = validate(tmp_path, "\n".join(lines) + "\nprofiles: {p: {exporters: *a9}}\n")
    assert time.process_time() - started < 1.0
    assert (code, out) == (2, [f"x.yaml:5:10: more than {MAX_NODES} YAML nodes once alias *a3 "
                               f"is expanded; a file may have at most {MAX_NODES} (an alias "
                               "counts as every node it stands for)"])


def test_a_merge_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["m0: &m0 {type: console}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}], k{i}: x}}"
              for i in range(1, 8)]
    code, out = validate(tmp_path, "\n".join(lines) + "\nexporters: {e: {<<: *m7}}\n")
    assert code == 2 and f"more than {MAX_NODES} YAML nodes once alias" in out[0]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as file:                      # 50 MB, sparse: cheap to make
        file.write(b"# " + b"x" * 100 + b"\n")
        file.truncate(50 * 1024 * 1024)
    started = time.process_time()
    result = CliRunner().invoke(app, ["exporters", "validate", str(path)])
    assert time.process_time() - started < 1.0
    assert result.exit_code == 2
    assert result.stdout.splitlines()[0] == (
        f"{path}:2:{MAX_FILE_BYTES - 103 + 1}: the file has {50 * 1024 * 1024} bytes, more than "
        f"the {MAX_FILE_BYTES} bytes (256 KiB) a YAML file may have: not read beyond this point")


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    text = "exporters: {}\n" + "#" * (MAX_FILE_BYTES - 15) + "\n"
    assert len(text) == MAX_FILE_BYTES
    assert validate(tmp_path, text) == (0, [])


def test_many_unknown_names_among_many_templates_stay_fast(tmp_path: Path) -> None:
    """A "did you mean" for each of thousands of names, among thousands: not quadratic."""
    text = ("exporters:\n" + "".join(f"  e{i}: {{type: console}}\n" for i in range(1200))
            + "profiles:\n  p:\n    exporters: ["
            + ", ".join(f"e{i}x" for i in range(5000)) + "]\n")
    path = tmp_path / "wide.yaml"
    path.write_text(text)
    started = time.process_time()
    catalog = load_catalog([path])
    assert time.process_time() - started < 2.0
    assert "did you mean 'e17'?" in catalog.errors[17].message


def test_typo_suggestions_among_many_candidates() -> None:
    names = [f"exporter-{i}" for i in range(100)] + ["prom-local", "otlp-central"]
    assert closest("prom-locl", names) == "prom-local"          # one dropped
    assert closest("prom-loacl", names) == "prom-local"         # two swapped
    assert closest("otlp-centrall", names) == "otlp-central"    # one added
    assert closest("prom_local", names) == "prom-local"         # one changed
    assert closest("zzz", names) is None
    assert closest("x" * 10_000, names) is None


def test_problem_lines_show_invisible_characters_escaped() -> None:
    problem = Problem("f.yaml", 3, "unknown key 'a\nb\x1b[31m\u200b'", column=7)
    assert str(problem) == "f.yaml:3:7: unknown key 'a\\nb\\x1b[31m\\u200b'"


def test_tab_lines_are_reported_up_to_a_count(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, "a:\n" + "\tb: 1\n" * 50)
    assert code == 2 and len(lines) == 21
    assert lines[-1] == "x.yaml:22: 30 more lines indented with a TAB"


# --- gadget.yaml, through `gadgets describe DIR` -------------------------------------

def describe(tmp_path: Path, data: bytes) -> tuple[int, str]:
    folder = tmp_path / "g"
    shutil.copytree(EXAMPLE_GADGET, folder, dirs_exist_ok=True)
    (folder / "gadget.yaml").write_bytes(data)
    result = CliRunner().invoke(app, ["gadgets", "describe", str(folder)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.replace(f"{folder}/", "")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "gadget.yaml:1: the file is empty; a gadget spec needs name, program, hooks and "
          "metrics\n"),
    (b"name: x\nsummary: \xff\n",
     "gadget.yaml:2:10: not UTF-8 text: byte 0xFF (invalid start byte)\n"),
    (b"name: x\xc2\x8b\n", "gadget.yaml:1:8: control character U+008B is not allowed in YAML\n"),
    (b"name: !vault x\n", f"gadget.yaml:1:7: unknown tag !vault; the tags ig-metrics reads are "
                          f"{TAGS_TAKEN}\n".encode().decode()),
    (b"metrics: &m [*m]\n", "gadget.yaml:1:14: alias *m is inside the node it names (&m, line 1): "
                            "a node cannot contain itself\n"),
])
def test_gadget_specs_get_file_line_too(tmp_path: Path, data: bytes, message: str) -> None:
    assert describe(tmp_path, data) == (2, message)


def test_an_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "x.yaml"
    path.write_text("exporters: {}\n")
    path.chmod(0)
    result = CliRunner().invoke(app, ["exporters", "validate", str(path)])
    assert (result.exit_code, result.stdout.splitlines()[0]) == (
        2, f"{path}: cannot read: Permission denied")


def test_markup_in_a_gadget_description_is_printed_as_written(tmp_path: Path) -> None:
    text = (EXAMPLE_GADGET / "gadget.yaml").read_text()
    text = "\n".join('summary: "[/bold] x"' if line.startswith("summary:") else line
                     for line in text.splitlines())
    code, _ = describe(tmp_path, text.encode())
    assert code == 0
