"""CloudWatch's term filter patterns: what they match, and what they refuse."""

from __future__ import annotations

import pytest

from modelhost.monitoring.logs.errors import InvalidParameter
from modelhost.monitoring.logs.filter_pattern import FilterPattern, parse_filter_pattern

EVENT = '2026-12-02 00:50:28,100 ERROR [x] worker: boom\nTraceback (most recent call last):\nValueError: "bad" input'


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("", True),
        ("   ", True),
        ("ERROR", True),
        ("error", False),  # case-sensitive
        ("ERROR boom", True),
        ("ERROR nothere", False),
        ('"most recent call"', True),
        ('"recent most"', False),
        ('"Traceback (most" ValueError', True),
        ("?WARN ?boom", True),
        ("?WARN ?INFO", False),
        ("ERROR ?WARN ?ValueError", True),
        ("ERROR ?WARN ?INFO", False),
        ("ERROR -healthcheck", True),
        ("ERROR -boom", False),
        ('-"call last"', False),
        ('"\\"bad\\""', True),
        ('"[x]"', True),
    ],
)
def test_what_a_pattern_matches(pattern: str, matches: bool) -> None:
    assert parse_filter_pattern(pattern).matches(EVENT) is matches


def test_terms_are_sorted_by_operator() -> None:
    assert parse_filter_pattern('a ?b -c "d e" ?"f"') == FilterPattern(("a", "d e"), ("b", "f"), ("c",))


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ('"never closed', "never closed"),
        ("?", "must be followed by a term"),
        ("ERROR -", "must be followed by a term"),
        ('ab"cd', "quote inside"),
        ('"ab"cd', "put a space after"),
        ('{ $.level = "ERROR" }', "JSON patterns are not supported"),
        ("[ip, user]", "space-delimited patterns are not supported"),
        ("%ERR.R%", "regular-expression patterns are not supported"),
        (" ".join(["t"] * 65), "at most 64 terms"),
    ],
)
def test_refused_patterns_say_what_to_fix(pattern: str, says: str) -> None:
    with pytest.raises(InvalidParameter, match=says) as refused:
        parse_filter_pattern(pattern)
    assert refused.value.code == "InvalidParameterException"
