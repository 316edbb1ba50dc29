"""DataProcessing: validation of the shape, InputFilter, JoinSource and OutputFilter on records (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelhost.batch import filters
from modelhost.batch.filters import DataProcessing
from modelhost.batch.records import RecordError

CSV = "text/csv"
JSONL = "application/jsonlines"


def processing(**shape: Any) -> DataProcessing:
    return DataProcessing.from_request(shape)


# from_request / to_request


def test_no_shape_is_the_default() -> None:
    assert DataProcessing.from_request(None) == DataProcessing()
    assert DataProcessing.from_request({}) == DataProcessing(None, None, "None")


def test_a_full_shape_round_trips() -> None:
    shape = {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    parsed = DataProcessing.from_request(shape)
    assert parsed == DataProcessing("$[1:]", "$[0,-1]", "Input")
    assert parsed.to_request() == shape


def test_to_request_omits_unset_filters_but_keeps_join_source() -> None:
    assert DataProcessing().to_request() == {"JoinSource": "None"}
    assert processing(OutputFilter="$").to_request() == {"OutputFilter": "$", "JoinSource": "None"}


def test_empty_filters_mean_unset_and_null_join_source_means_none() -> None:
    assert processing(InputFilter="", OutputFilter="", JoinSource=None) == DataProcessing()


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ({"InputFilter": "$..a"}, "DataProcessing.InputFilter: JSONPath '$..a'"),
        ({"OutputFilter": "id"}, "DataProcessing.OutputFilter: JSONPath 'id' must start with $"),
        ({"OutputFilter": "$[?(@.a)]"}, "DataProcessing.OutputFilter:"),
        ({"InputFilter": 5}, "DataProcessing.InputFilter: must be a JSONPath string"),
        ({"InputFilter": ["$"]}, "DataProcessing.InputFilter: must be a JSONPath string"),
        ({"InputFilter": "$" + ".a" * 32}, "DataProcessing.InputFilter: is 65 characters; at most 63"),
        ({"JoinSource": "Output"}, "DataProcessing.JoinSource: 'Output' is not one of None, Input"),
        ({"JoinSource": "input"}, "DataProcessing.JoinSource:"),
        ({"JoinSource": 1}, "DataProcessing.JoinSource:"),
        ({"Filter": "$"}, "DataProcessing.Filter: not a member"),
    ],
)
def test_invalid_shapes_are_refused_naming_the_member(shape: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as caught:
        DataProcessing.from_request(shape)
    assert words in str(caught.value)


def test_a_shape_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="DataProcessing: must be an object"):
        DataProcessing.from_request(["$"])  # type: ignore[arg-type]


def test_a_63_character_filter_is_accepted() -> None:
    expression = "$" + ".a" * 31
    assert len(expression) == 63
    assert processing(InputFilter=expression).input_filter == expression


def test_needs_per_record_outputs() -> None:
    assert not filters.needs_per_record_outputs(DataProcessing())
    assert not filters.needs_per_record_outputs(processing(InputFilter="$[1:]"))
    assert not filters.needs_per_record_outputs(processing(OutputFilter="$"))
    assert filters.needs_per_record_outputs(processing(OutputFilter="$[0]"))
    assert filters.needs_per_record_outputs(processing(JoinSource="Input"))


# filter_input


def test_no_filter_or_a_root_filter_leaves_the_bytes_alone() -> None:
    record = b'{ "a" : 1 }'
    assert filters.filter_input(record, DataProcessing(), JSONL) is record
    assert filters.filter_input(record, processing(InputFilter="$"), JSONL) is record
    assert filters.filter_input(b"\xff,not json", processing(InputFilter="$"), None) == b"\xff,not json"


def test_csv_input_filter_drops_the_id_column() -> None:
    assert filters.filter_input(b"id-1,0.5,3,x", processing(InputFilter="$[1:]"), CSV) == b"0.5,3,x"
    assert filters.filter_input(b"a,b,c,d", processing(InputFilter="$[0,2]"), "text/csv; charset=utf-8") == b"a,c"
    assert filters.filter_input(b"a,b,c", processing(InputFilter="$[-1]"), CSV) == b"c"


def test_csv_quoting_follows_rfc_4180() -> None:
    record = b'7,"hello, world","say ""hi""",plain'
    assert filters.filter_input(record, processing(InputFilter="$[1:]"), CSV) == b'"hello, world","say ""hi""",plain'
    assert filters.filter_input(b'"quoted",x', processing(InputFilter="$[0]"), CSV) == b"quoted"


def test_csv_keeps_bytes_that_are_not_utf8() -> None:
    assert filters.filter_input(b"\xff\xfe,caf\xe9,\x80", processing(InputFilter="$[1:]"), CSV) == b"caf\xe9,\x80"


def test_json_input_filter_selects_and_reserialises_compactly() -> None:
    record = b'{"id": 1, "features": [1.5, 2, {"k": "\xc3\xa9"}]}'
    assert filters.filter_input(record, processing(InputFilter="$.features"), JSONL) == '[1.5,2,{"k":"é"}]'.encode()
    assert filters.filter_input(record, processing(InputFilter="$.id"), "application/json") == b"1"
    assert filters.filter_input(record, processing(InputFilter="$['id','features']"), JSONL) == (
        b'{"id":1,"features":[1.5,2,{"k":"\xc3\xa9"}]}'
    )


def test_a_selected_string_is_written_as_json() -> None:
    assert filters.filter_input(b'{"text": "hi"}', processing(InputFilter="$.text"), JSONL) == b'"hi"'


def test_without_a_telling_content_type_json_containers_are_json_and_the_rest_csv() -> None:
    keep_b = processing(InputFilter="$[1]")
    assert filters.filter_input(b'["a", "b"]', keep_b, None) == b'"b"'
    assert filters.filter_input(b"a,b", keep_b, None) == b"b"
    assert filters.filter_input(b"a,b", keep_b, "application/octet-stream") == b"b"
    assert filters.filter_input(b"[a,b", keep_b, None) == b"b"  # starts like JSON but is not: CSV
    assert filters.filter_input(b'{"x": [1, 2]}', processing(InputFilter="$.x[0]"), "") == b"1"


@pytest.mark.parametrize(
    ("record", "expression", "content_type", "words"),
    [
        (b"a,b", "$.a", JSONL, "The input record is not JSON"),
        (b"\xff\xfe{}", "$.a", JSONL, "is not JSON"),
        (b'{"a": 1}', "$.b", JSONL, "InputFilter $.b selects nothing in the record"),
        (b"[1, 2]", "$[5]", JSONL, "index 5 is out of range"),
        (b"a,b", "$[5]", CSV, "InputFilter $[5] selects nothing in the CSV row"),
        (b"only", "$[1:]", CSV, "selects nothing"),
        (b"a,b", "$.name", CSV, "cannot select CSV columns"),
        (b'a,"b', "$[0]", CSV, "is not one CSV row"),
        (b"a\rb,c", "$[0]", CSV, "more than one line"),
        (b"[" * 100 + b"]" * 100, "$[0]", JSONL, "nests deeper than 64"),
        (b"[" * 100_000 + b"]" * 100_000, "$[0]", JSONL, "nests deeper than 64"),
        (b'{"n": ' + b"9" * 5000 + b"}", "$.n", JSONL, "more than 30 digits"),
        (b'{"n": 1e400}', "$.n", JSONL, "not finite"),
        (b'{"n": NaN}', "$.n", JSONL, "NaN"),
        (b'{"n": 1e400}', "$.n", None, "not finite"),
        (b'{"s": "\\ud800"}', "$.s", JSONL, "surrogate"),
        (b"", "$.a", JSONL, "is not JSON"),
    ],
)
def test_input_filter_errors_say_what_is_wrong(record: bytes, expression: str, content_type: str, words: str) -> None:
    with pytest.raises(RecordError) as caught:
        filters.filter_input(record, processing(InputFilter=expression), content_type)
    assert words in caught.value.message
    assert caught.value.index is None


def test_an_empty_csv_record_has_no_columns() -> None:
    with pytest.raises(RecordError, match="selects nothing"):
        filters.filter_input(b"", processing(InputFilter="$[0]"), CSV)


# join_and_filter


def test_no_join_and_no_filter_leaves_the_output_alone() -> None:
    output = b"anything \xff at all\n"
    assert filters.join_and_filter(b"in", output, DataProcessing(), CSV, CSV) is output
    assert filters.join_and_filter(b"in", output, processing(OutputFilter="$"), CSV, CSV) is output


def test_csv_join_appends_the_output_columns() -> None:
    join = processing(JoinSource="Input")
    assert filters.join_and_filter(b"1,2,3", b"1", join, CSV, CSV) == b"1,2,3,1"
    assert filters.join_and_filter(b"1,2,3", b"0.2,0.8\r\n", join, CSV, CSV) == b"1,2,3,0.2,0.8"


def test_csv_join_uses_the_original_input_and_keeps_the_id_with_the_output() -> None:
    dp = processing(InputFilter="$[1:]", JoinSource="Input", OutputFilter="$[0,-1]")
    record = b"id-9,5.1,3.5,1.4"
    assert filters.filter_input(record, dp, CSV) == b"5.1,3.5,1.4"
    assert filters.join_and_filter(record, b"setosa\n", dp, CSV, CSV) == b"id-9,setosa"


def test_json_object_join_adds_sagemaker_output() -> None:
    join = processing(JoinSource="Input")
    assert filters.join_and_filter(b'{"key": 1}', b'{"label": 1}', join, JSONL, JSONL) == (
        b'{"key":1,"SageMakerOutput":{"label":1}}'
    )


def test_json_join_overwrites_an_input_member_named_sagemaker_output() -> None:
    joined = filters.join_and_filter(
        b'{"SageMakerOutput": "old", "a": 1}', b"2", processing(JoinSource="Input"), JSONL, JSONL
    )
    assert json.loads(joined) == {"SageMakerOutput": 2, "a": 1}


@pytest.mark.parametrize(("record", "value"), [(b"[1, 2, 3]", [1, 2, 3]), (b'"text"', "text"), (b"5", 5)])
def test_json_join_of_a_non_object_input_makes_a_new_object(record: bytes, value: Any) -> None:
    joined = filters.join_and_filter(record, b"[0.9]", processing(JoinSource="Input"), JSONL, JSONL)
    assert json.loads(joined) == {"SageMakerInput": value, "SageMakerOutput": [0.9]}


def test_an_output_that_is_not_json_joins_as_a_string() -> None:
    join = processing(JoinSource="Input")
    assert filters.join_and_filter(b'{"k": 1}', b"positive\n", join, JSONL, "text/plain") == (
        b'{"k":1,"SageMakerOutput":"positive"}'
    )
    assert filters.join_and_filter(b'{"k": 1}', b"caf\xc3\xa9", join, JSONL, None) == (
        '{"k":1,"SageMakerOutput":"café"}'.encode()
    )
    assert filters.join_and_filter(b'{"k": 1}', b"", join, JSONL, None) == b'{"k":1,"SageMakerOutput":""}'


def test_output_filter_on_the_joined_json_record() -> None:
    dp = processing(JoinSource="Input", OutputFilter="$['id','SageMakerOutput']")
    assert filters.join_and_filter(b'{"id": 3, "f": [1, 2]}', b'{"label": 0}', dp, JSONL, JSONL) == (
        b'{"id":3,"SageMakerOutput":{"label":0}}'
    )
    only_label = processing(JoinSource="Input", OutputFilter="$.SageMakerOutput.label")
    assert filters.join_and_filter(b'{"id": 3}', b'{"label": 0}', only_label, JSONL, JSONL) == b"0"


def test_output_filter_without_join_applies_to_the_output_alone() -> None:
    dp = processing(OutputFilter="$.label")
    assert filters.join_and_filter(b"ignored", b'{"label": 1, "p": 0.9}', dp, CSV, "application/json") == b"1"
    assert filters.join_and_filter(b"ignored", b"0.1,0.9\n", processing(OutputFilter="$[-1]"), JSONL, CSV) == b"0.9"
    # with no telling Accept, a JSON container is JSON
    assert filters.join_and_filter(b"x", b'{"label": 2}', dp, None, None) == b"2"


@pytest.mark.parametrize(
    ("record", "output", "shape", "content_type", "accept", "words"),
    [
        (b'{"a": 1}', b"\xff\xfe", {"JoinSource": "Input"}, JSONL, None, "neither JSON nor UTF-8 text"),
        (b'{"a": 1}', b"[1e400]", {"JoinSource": "Input"}, JSONL, JSONL, "The model's answer is JSON this server"),
        (b"not json", b"1", {"JoinSource": "Input"}, JSONL, JSONL, "The input record is not JSON"),
        (b"a,b", b"1\n2", {"JoinSource": "Input"}, CSV, CSV, "The model's answer holds more than one line"),
        (b"a,b", b"1", {"JoinSource": "Input", "OutputFilter": "$[9]"}, CSV, CSV, "OutputFilter $[9] selects nothing"),
        (b'{"a": 1}', b"1", {"JoinSource": "Input", "OutputFilter": "$.id"}, JSONL, JSONL, "has no member 'id'"),
        (b"x", b"not json", {"OutputFilter": "$.label"}, None, JSONL, "The model's answer is not JSON"),
        (b"x", b"a,b", {"OutputFilter": "$.label"}, None, CSV, "cannot select CSV columns"),
    ],
)
def test_join_and_filter_errors_say_what_is_wrong(
    record: bytes, output: bytes, shape: dict[str, Any], content_type: str | None, accept: str | None, words: str
) -> None:
    with pytest.raises(RecordError) as caught:
        filters.join_and_filter(record, output, DataProcessing.from_request(shape), content_type, accept)
    assert words in caught.value.message


def test_a_csv_join_keeps_non_utf8_bytes() -> None:
    joined = filters.join_and_filter(b"\xe9t\xe9,1", b"\xff", processing(JoinSource="Input"), CSV, CSV)
    assert joined == b"\xe9t\xe9,1,\xff"
