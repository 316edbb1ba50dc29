"""Strict JSON parsing of request bodies: depth, number sizes, non-finite floats, lone surrogates (pure)."""

from __future__ import annotations

import json

import pytest

from modelhost import json_guard


def test_ordinary_json_parses_as_json_loads_does() -> None:
    raw = '{"a": [1, 2.5, "x", null, true, {"b": -3}], "c": "\\u00e9"}'
    assert json_guard.loads(raw) == json.loads(raw)
    assert json_guard.loads(b'{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("[" * 1000 + "]" * 1000, "nests deeper than 64"),
        ("[" * 100_000 + "]" * 100_000, "nests deeper than 64"),
        ('{"a": ' * 65 + "1" + "}" * 65, "nests deeper than 64"),
        ('{"n": ' + "9" * 400 + "}", "more than 30 digits"),
        ('{"n": -' + "9" * 5000 + "}", "more than 30 digits"),
        ('{"w": NaN}', "NaN is not a number"),
        ('{"w": Infinity}', "Infinity is not a number"),
        ('{"w": -Infinity}', "-Infinity is not a number"),
        ('{"w": [1e400]}', "'w[0]' is not finite"),
        ('{"Arn": "\\ud800"}', "'Arn' holds a lone UTF-16 surrogate"),
        ('{"\\udfff": 1}', "string key"),
    ],
)
def test_values_the_server_cannot_hold_are_refused(raw: str, words: str) -> None:
    with pytest.raises(json_guard.UnsafeJson) as caught:
        json_guard.loads(raw)
    assert words in caught.value.message


def test_the_refusal_names_the_member() -> None:
    with pytest.raises(json_guard.UnsafeJson) as caught:
        json_guard.loads('{"ProductionVariants": [{"InitialVariantWeight": 1e400}]}')
    assert caught.value.path == "ProductionVariants[0].InitialVariantWeight"


def test_64_levels_are_allowed() -> None:
    assert json_guard.loads("[" * 64 + "]" * 64) is not None


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe\xfd", b"{'a': 1}", b"[1,]"])
def test_what_is_not_json_is_not_json(raw: bytes) -> None:
    with pytest.raises(json_guard.NotJson):
        json_guard.loads(raw)
