"""Durations and ${env:...} expansion, the two value syntaxes every setting shares."""

from __future__ import annotations

import pytest

from ig_metrics.config import expand_env, format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("10s", 10.0), ("1.5s", 1.5), ("1m", 60.0), ("1h", 3600.0),
    (" 2m ", 120.0), ("0.25s", 0.25), ("-5s", -5.0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("10", "'10' is not a duration: write a number with a unit, e.g. 500ms, 10s, 1.5s, "
           "1m or 1h (a unit is required: 10s means seconds)"),
    ("soon", "'soon' is not a duration: write a number with a unit, e.g. 500ms, 10s, "
             "1.5s, 1m or 1h"),
    ("10 seconds", "'10 seconds' is not a duration: write a number with a unit, e.g. "
                   "500ms, 10s, 1.5s, 1m or 1h"),
    ("", "'' is not a duration: write a number with a unit, e.g. 500ms, 10s, 1.5s, 1m or 1h"),
])
def test_parse_duration_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_duration(text)
    assert str(error.value) == message


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "500ms"), (10.0, "10s"), (1.5, "1.5s"), (60.0, "1m"), (90.0, "90s"),
    (3600.0, "1h"), (0.0015, "0.0015s"),
])
def test_format_duration_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_set_variable_is_used_and_marked_as_from_env() -> None:
    expansion = expand_env("Bearer ${env:TOKEN}", {"TOKEN": "abc"})
    assert (expansion.text, expansion.used, expansion.from_env) == ("Bearer abc", ("TOKEN",), True)


def test_set_variable_wins_over_its_default() -> None:
    assert expand_env("${env:HOST:-localhost}:4317", {"HOST": "c.example"}).text == "c.example:4317"


def test_default_is_used_when_unset_and_is_not_from_env() -> None:
    expansion = expand_env("${env:HOST:-localhost}:4317", {})
    assert (expansion.text, expansion.from_env, expansion.ok) == ("localhost:4317", False, True)


def test_empty_default_is_allowed() -> None:
    assert expand_env("a${env:X:-}b", {}).text == "ab"


def test_unset_without_default_is_missing() -> None:
    expansion = expand_env("${env:A}-${env:B}", {"B": "b"})
    assert (expansion.missing, expansion.used, expansion.ok) == (("A",), ("B",), False)


def test_several_references_in_one_string() -> None:
    environ = {"SCHEME": "https", "HOST": "c.example"}
    expansion = expand_env("${env:SCHEME}://${env:HOST}:${env:PORT:-4318}/v1", environ)
    assert expansion.text == "https://c.example:4318/v1"
    assert expansion.used == ("SCHEME", "HOST")


def test_double_dollar_escapes_a_literal_reference() -> None:
    expansion = expand_env("cost: $${env:X} and $$5", {"X": "no"})
    assert (expansion.text, expansion.from_env) == ("cost: ${env:X} and $$5", False)


@pytest.mark.parametrize("text", ["${HOME}", "${env:}", "${env:1X}", "${env:X"])
def test_malformed_references_are_reported_as_written(text: str) -> None:
    expansion = expand_env(text, {"HOME": "/root", "X": "x"})
    assert expansion.malformed == (text,)
    assert not expansion.ok


def test_text_without_references_is_unchanged() -> None:
    assert expand_env("plain $ text {}", {}).text == "plain $ text {}"
