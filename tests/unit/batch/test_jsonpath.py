"""SageMaker's JSONPath subset: what parses, what is refused, and what each expression selects (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.batch import jsonpath
from modelhost.batch.jsonpath import JsonPathError, NoMatch

DOC: dict[str, Any] = {
    "id": 7,
    "features": [1, 2, 3, 4, 5],
    "nested": {"a": {"b": "deep"}, "list": [{"k": 1}, {"k": 2}, {"other": 3}]},
    "odd key": "spaced",
    "it's": "quoted",
    "SageMakerOutput": {"label": 1},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$", DOC),
        ("$.id", 7),
        ("$['id']", 7),
        ('$["id"]', 7),
        ("$.nested.a.b", "deep"),
        ("$['nested']['a']['b']", "deep"),
        ("$.features[0]", 1),
        ("$.features[-1]", 5),
        ("$.features[-5]", 1),
        ("$['odd key']", "spaced"),
        ("$['it\\'s']", "quoted"),
        ('$["it\'s"]', "quoted"),
        ("$.nested.list[1].k", 2),
    ],
)
def test_single_selectors_give_the_one_value(expression: str, expected: Any) -> None:
    path = jsonpath.parse(expression)
    assert path.definite
    assert path.select(DOC) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$.features[1:]", [2, 3, 4, 5]),
        ("$.features[:2]", [1, 2]),
        ("$.features[2:4]", [3, 4]),  # the end is exclusive, as JSONPath's slice
        ("$.features[-2:]", [4, 5]),
        ("$.features[:]", [1, 2, 3, 4, 5]),
        ("$.features[1:100]", [2, 3, 4, 5]),  # slices clip
        ("$.features[0,2,4]", [1, 3, 5]),
        ("$.features[0, -1]", [1, 5]),
        ("$.features[0,3:]", [1, 4, 5]),  # AWS's own example shape: $[0,5:]
        ("$.features[4,0]", [5, 1]),  # the order written
        ("$.features[*]", [1, 2, 3, 4, 5]),
        ("$.features.*", [1, 2, 3, 4, 5]),
        ("$.nested.a.*", ["deep"]),
        ("$.nested.list[*].k", [1, 2]),  # after a multi-selector, elements lacking the member are skipped
        ("$.nested.list[0:2].k", [1, 2]),
        ("$.SageMakerOutput[*]", [1]),
    ],
)
def test_multi_selectors_give_a_list(expression: str, expected: Any) -> None:
    path = jsonpath.parse(expression)
    assert not path.definite
    assert path.select(DOC) == expected


def test_a_list_of_names_selects_an_object_keeping_the_names() -> None:
    assert jsonpath.parse("$['id','SageMakerOutput']").select(DOC) == {"id": 7, "SageMakerOutput": {"label": 1}}
    assert jsonpath.parse("$['SageMakerOutput', 'id']").select(DOC) == {"SageMakerOutput": {"label": 1}, "id": 7}


def test_the_guides_dot_before_bracket_form_is_accepted() -> None:
    document = {"field1": {"child1": 1, "child2": 2, "child3": 3}}
    assert jsonpath.parse("$.field1.['child1','child2']").select(document) == {"child1": 1, "child2": 2}
    assert jsonpath.parse("$.field1.['child3']").select(document) == 3


def test_a_list_of_names_after_a_multi_selector_gives_one_object_per_match() -> None:
    rows = [{"a": 1, "b": 2, "c": 3}, {"a": 4, "c": 6}, {"c": 9}]
    assert jsonpath.parse("$[*]['a','b']").select(rows) == [{"a": 1, "b": 2}, {"a": 4}]


def test_a_root_path_is_the_document_itself() -> None:
    path = jsonpath.parse("$")
    assert path.is_root and path.definite
    assert path.select([1, 2]) == [1, 2]
    assert path.select(None) is None


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("$.missing", "has no member 'missing'"),
        ("$.id.x", "$['id'] is a number, not an object"),
        ("$.features[5]", "has 5 elements, so index 5 is out of range"),
        ("$.features[-6]", "index -6 is out of range"),
        ("$.features[0,9]", "index 9 is out of range"),  # AWS: indexes outside the dimension are an error
        ("$.nested.a[0]", "is an object, not an array"),
        ("$['id','nope']", "has no member 'nope'"),
        ("$.features[7:]", "selects no value"),
        ("$.nested.list[*].missing", "selects no value"),
        ("$.id.*", "selects no value"),
    ],
)
def test_what_matches_nothing_raises_no_match_naming_the_path(expression: str, words: str) -> None:
    with pytest.raises(NoMatch) as caught:
        jsonpath.parse(expression).select(DOC)
    assert words in str(caught.value)
    assert expression in str(caught.value)


def test_no_match_is_not_a_path_error() -> None:
    assert not issubclass(NoMatch, JsonPathError)
    assert issubclass(JsonPathError, ValueError)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("", "must start with $"),
        ("id", "must start with $"),
        ("@.id", "must start with $"),
        ("$..id", "recursive descent"),
        ("$.a..b", "recursive descent"),
        ("$[?(@.id > 1)]", "filter and script"),
        ("$[(@.length-1)]", "filter and script"),
        ("$[::2]", "slice steps"),
        ("$[1:5:2]", "slice steps"),
        ("$[0:2,246:]", "only one range"),
        ("$[]", "empty brackets"),
        ("$[1", "not closed"),
        ("$['a'", "not closed"),
        ("$['a' 'b']", "expected , or ]"),
        ("$['a',]", "expected a quoted name"),
        ("$['a',1]", "expected a quoted name"),
        ("$[a]", "is not an index"),
        ("$[1.5]", "is not an index"),
        ("$[1,]", "is not an index"),
        ("$[" + "9" * 10 + "]", "at most 9 digits"),
        ("$.", "ends with '.'"),
        ("$ .a", "expected . or ["),
        ("$.a b", "expected . or ["),
        ("$.length()", "expected . or ["),
        ("$.:b", "bracket form"),
        ("$.a:b", "expected . or ["),
        ("$['a','b'].c", "may only end the path"),
        ("$['a','b'][0]", "may only end the path"),
        ("$.*x", "expected . or ["),
    ],
)
def test_what_is_outside_the_subset_is_refused_naming_the_part(expression: str, words: str) -> None:
    with pytest.raises(JsonPathError) as caught:
        jsonpath.parse(expression)
    assert words in str(caught.value)


def test_expressions_over_1000_characters_are_refused() -> None:
    long = "$" + ".a" * 500
    assert len(long) == 1001
    with pytest.raises(JsonPathError, match="1001 characters; at most 1000"):
        jsonpath.parse(long)
    jsonpath.parse(long[:-2])  # 999 characters parse


def test_a_non_string_expression_is_refused() -> None:
    with pytest.raises(JsonPathError, match="must be a string"):
        jsonpath.parse(5)  # type: ignore[arg-type]


def test_a_long_path_over_a_deep_document_does_not_recurse() -> None:
    depth = 499
    document: Any = "bottom"
    for _ in range(depth):
        document = {"a": document}
    assert jsonpath.parse("$" + ".a" * depth).select(document) == "bottom"


def test_selected_values_are_the_documents_own_not_copies() -> None:
    document = {"a": {"b": [1]}}
    assert jsonpath.parse("$.a").select(document) is document["a"]


def test_booleans_and_null_are_not_containers() -> None:
    with pytest.raises(NoMatch, match="is a boolean"):
        jsonpath.parse("$.a.b").select({"a": True})
    with pytest.raises(NoMatch, match="is null"):
        jsonpath.parse("$.a[0]").select({"a": None})
    with pytest.raises(NoMatch, match="is a string"):
        jsonpath.parse("$.a[0]").select({"a": "text"})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$", ["id", "a", "b", "c"]),
        ("$[1:]", ["a", "b", "c"]),
        ("$[0]", ["id"]),
        ("$[-1]", ["c"]),
        ("$[0,2]", ["id", "b"]),
        ("$[0,-1]", ["id", "c"]),
        ("$[1:3]", ["a", "b"]),
        ("$[*]", ["id", "a", "b", "c"]),
        ("$[0,2:]", ["id", "b", "c"]),
    ],
)
def test_csv_columns_are_selected_by_index(expression: str, expected: list[str]) -> None:
    assert jsonpath.parse(expression).select_columns(["id", "a", "b", "c"]) == expected


@pytest.mark.parametrize("expression", ["$.id", "$['id']", "$['a','b']", "$[1:][0]", "$[*][0]"])
def test_csv_columns_take_only_index_paths(expression: str) -> None:
    with pytest.raises(JsonPathError, match="cannot select CSV columns"):
        jsonpath.parse(expression).select_columns(["a", "b"])


def test_csv_columns_out_of_range_raise_no_match() -> None:
    with pytest.raises(NoMatch, match="index 3 is out of range"):
        jsonpath.parse("$[0,3]").select_columns(["a", "b"])
    with pytest.raises(NoMatch):
        jsonpath.parse("$[1:]").select_columns(["only"])
    assert jsonpath.parse("$").select_columns([]) == []
