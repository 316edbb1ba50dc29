"""Batch transform records: decompression, splitting, packing into payloads, cutting answers, assembly (pure)."""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
import zlib

import pytest

from modelhost.batch import records
from modelhost.batch.records import Payload, RecordError

MIB = 1024 * 1024


# decompress


def test_none_compression_returns_the_data_unchanged() -> None:
    data = b"\x1f\x8b not really gzip"
    assert records.decompress(data, "None", 1) is data


def test_gzip_round_trips() -> None:
    data = b"a,b,c\n" * 10_000
    assert records.decompress(gzip.compress(data), "Gzip", len(data)) == data


def test_output_exactly_at_the_cap_is_allowed_and_one_byte_more_is_refused() -> None:
    data = b"x" * 4096
    assert records.decompress(gzip.compress(data), "Gzip", 4096) == data
    with pytest.raises(RecordError, match="more than 4095 bytes") as caught:
        records.decompress(gzip.compress(data), "Gzip", 4095)
    assert caught.value.index is None


def test_a_gzip_bomb_stops_at_the_cap_without_inflating_it_all() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * MIB
    bomb = b"".join(compressor.compress(chunk) for _ in range(64)) + compressor.flush()  # 64 MiB of zeros
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(RecordError, match="decompresses to more than"):
            records.decompress(bomb, "Gzip", MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB


def test_several_gzip_members_are_concatenated_and_nul_padding_is_ignored() -> None:
    data = gzip.compress(b"first\n") + gzip.compress(b"") + gzip.compress(b"second\n") + b"\0" * 512
    assert records.decompress(data, "Gzip", 100) == b"first\nsecond\n"


def test_an_empty_gzip_object_is_no_records() -> None:
    assert records.decompress(b"", "Gzip", MIB) == b""


def test_the_cap_counts_all_members_together() -> None:
    data = gzip.compress(b"a" * 60) + gzip.compress(b"b" * 60)
    with pytest.raises(RecordError, match="more than 100 bytes"):
        records.decompress(data, "Gzip", 100)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"plain text, not gzip", "not gzip data; set CompressionType to None"),
        (zlib.compress(b"zlib, not gzip"), "not gzip data"),
        (gzip.compress(b"x" * 1000)[:-10], "truncated"),
        (gzip.compress(b"x" * 1000)[:15], "truncated"),
        (gzip.compress(b"ok") + b"trailing garbage", "not gzip data"),
    ],
)
def test_what_is_not_gzip_is_refused_with_advice(data: bytes, words: str) -> None:
    with pytest.raises(RecordError, match=words):
        records.decompress(data, "Gzip", MIB)


def test_an_unknown_compression_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not None or Gzip"):
        records.decompress(b"", "Bzip2", 1)


def test_gzip_input_longer_than_one_inflate_step_decompresses() -> None:
    data = random.Random(7).randbytes(3 * MIB)  # incompressible: the gzip data spans several 1 MiB steps
    compressed = gzip.compress(data, compresslevel=1)
    assert len(compressed) > 2 * MIB
    assert records.decompress(compressed + gzip.compress(b"!"), "Gzip", len(data) + 1) == data + b"!"


# split


def test_split_none_is_the_object_whole_and_an_empty_object_has_no_records() -> None:
    assert records.split(b"a\nb\n", "None") == [b"a\nb\n"]
    assert records.split(b"", "None") == []
    assert records.split(b"   ", "None") == [b"   "]


def test_split_line_handles_crlf_and_skips_blank_lines() -> None:
    data = b"a,1\r\n\r\n  \n\tb,2 \n\nc,3"
    assert records.split(data, "Line") == [b"a,1", b"\tb,2 ", b"c,3"]


def test_split_line_of_empty_or_blank_data_has_no_records() -> None:
    assert records.split(b"", "Line") == []
    assert records.split(b"\n\r\n \n", "Line") == []


def test_split_line_keeps_non_utf8_bytes_and_lone_carriage_returns_inside_lines() -> None:
    assert records.split(b"\xff\xfe,\x80\nx\ry\n", "Line") == [b"\xff\xfe,\x80", b"x\ry"]


@pytest.mark.parametrize("split_type", ["RecordIO", "TFRecord", "line", ""])
def test_other_split_types_are_refused(split_type: str) -> None:
    with pytest.raises(ValueError, match="not supported"):
        records.split(b"x", split_type)


# pack


def test_single_record_sends_one_record_per_payload() -> None:
    assert list(records.pack([b"a", b"bb", b"c"], 0, "SingleRecord", 10, "Line")) == [
        Payload(0, 1, b"a"),
        Payload(1, 1, b"bb"),
        Payload(2, 1, b"c"),
    ]


def test_packing_starts_at_the_given_record() -> None:
    assert list(records.pack([b"a", b"b", b"c"], 2, "SingleRecord", 0, "Line")) == [Payload(2, 1, b"c")]
    assert list(records.pack([b"a", b"b", b"c"], 1, "MultiRecord", 0, "Line")) == [Payload(1, 2, b"b\nc")]
    assert list(records.pack([b"a"], 1, "MultiRecord", 0, "Line")) == []
    assert list(records.pack([], 0, "MultiRecord", 10, "Line")) == []


def test_multi_record_fills_each_payload_up_to_the_limit_exactly() -> None:
    # "aa\nbb" is 5 bytes: exactly the limit
    assert list(records.pack([b"aa", b"bb", b"cc", b"d"], 0, "MultiRecord", 5, "Line")) == [
        Payload(0, 2, b"aa\nbb"),
        Payload(2, 2, b"cc\nd"),
    ]


def test_multi_record_counts_the_newlines_between_records() -> None:
    # three 1-byte records joined are 5 bytes; a limit of 4 holds only two
    assert [p.count for p in records.pack([b"a", b"b", b"c"], 0, "MultiRecord", 4, "Line")] == [2, 1]


def test_a_record_exactly_at_the_limit_fits_alone() -> None:
    record = b"x" * MIB
    assert list(records.pack([b"a", record, b"b"], 0, "MultiRecord", MIB, "Line")) == [
        Payload(0, 1, b"a"),
        Payload(1, 1, record),
        Payload(2, 1, b"b"),
    ]
    assert list(records.pack([record], 0, "SingleRecord", MIB, "Line")) == [Payload(0, 1, record)]


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_a_record_over_the_limit_is_refused_with_its_index_after_the_payloads_before_it(strategy: str) -> None:
    packed = records.pack([b"ok", b"x" * (MIB + 1), b"never"], 0, strategy, MIB, "Line")
    assert next(packed) == Payload(0, 1, b"ok")
    with pytest.raises(RecordError) as caught:
        next(packed)
    assert caught.value.index == 1
    assert "Record 2 is 1048577 bytes, more than MaxPayloadInMB=1" in caught.value.message
    assert "raise MaxPayloadInMB (up to 100)" in caught.value.message


def test_a_limit_of_zero_means_no_limit() -> None:
    big = [b"x" * MIB] * 3
    assert list(records.pack(big, 0, "MultiRecord", 0, "Line")) == [Payload(0, 3, b"\n".join(big))]
    assert len(list(records.pack(big, 0, "SingleRecord", 0, "Line"))) == 3


def test_split_type_none_sends_each_record_alone_whatever_the_strategy() -> None:
    assert list(records.pack([b"object one", b"object two"], 0, "MultiRecord", 100, "None")) == [
        Payload(0, 1, b"object one"),
        Payload(1, 1, b"object two"),
    ]


def test_pack_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="start"):
        records.pack([b"a"], -1, "MultiRecord", 0, "Line")
    with pytest.raises(ValueError, match="BatchStrategy"):
        records.pack([b"a"], 0, "Everything", 0, "Line")


def test_many_small_records_pack_in_linear_time() -> None:
    many = [b"r"] * 200_000
    payloads = list(records.pack(many, 0, "MultiRecord", 6 * MIB, "Line"))
    assert sum(p.count for p in payloads) == 200_000
    assert payloads[0].body == b"\n".join(many)


# split_response


def test_one_record_gets_the_body_whole() -> None:
    assert records.split_response(b"a\nb\n", 1, 5) == [b"a\nb\n"]


def test_lines_are_cut_per_record_with_crlf_and_blank_lines_dropped() -> None:
    assert records.split_response(b"0.1\r\n0.2\n\n0.3\n", 3, 0) == [b"0.1", b"0.2", b"0.3"]


def test_json_lines_answers_are_cut_by_line() -> None:
    body = b'{"label":1}\n{"label":0}\n'
    assert records.split_response(body, 2, 0) == [b'{"label":1}', b'{"label":0}']
    arrays = b"[0.1,0.9]\n[0.8,0.2]"
    assert records.split_response(arrays, 2, 0) == [b"[0.1,0.9]", b"[0.8,0.2]"]


def test_a_json_array_answer_is_cut_by_element_and_reserialised_compactly() -> None:
    body = b'[ {"label": 1, "p": [0.1, 0.9]},\n  "two", 3 ]'
    assert records.split_response(body, 3, 0) == [b'{"label":1,"p":[0.1,0.9]}', b'"two"', b"3"]


def test_a_pretty_printed_array_is_never_taken_for_lines() -> None:
    body = json.dumps([1, 2], indent=2).encode()  # 4 lines: "[", "1,", "2", "]"
    with pytest.raises(RecordError, match="an array of 2 elements"):
        records.split_response(body, 4, 0)
    assert records.split_response(body, 2, 0) == [b"1", b"2"]


def test_a_count_mismatch_names_the_records_and_both_counts() -> None:
    with pytest.raises(RecordError) as caught:
        records.split_response(b"a\nb\n", 3, 10)
    assert "records 11-13 (3 records) with 2 non-blank lines" in caught.value.message
    assert "SingleRecord" in caught.value.message
    assert caught.value.index == 10
    with pytest.raises(RecordError, match="records 1-2 .* with an array of 3 elements"):
        records.split_response(b"[1,2,3]", 2, 0)
    with pytest.raises(RecordError, match="with one JSON object"):
        records.split_response(b'{"predictions": [1, 2]}', 2, 0)


def test_a_json_answer_the_server_cannot_hold_is_refused() -> None:
    with pytest.raises(RecordError, match="cannot hold"):
        records.split_response(b"[1e400, 2]", 2, 0)
    with pytest.raises(RecordError, match="cannot hold"):
        records.split_response(b"[NaN, 2]", 2, 0)


def test_a_deeply_nested_answer_does_not_crash() -> None:
    with pytest.raises(RecordError):
        records.split_response(b"[" * 100_000 + b"]" * 100_000, 2, 0)


def test_non_utf8_lines_are_kept_as_bytes() -> None:
    assert records.split_response(b"\xff\n\xfe", 2, 0) == [b"\xff", b"\xfe"]


def test_split_response_refuses_a_count_below_one() -> None:
    with pytest.raises(ValueError):
        records.split_response(b"", 0, 0)


# assemble


def test_assemble_line_ends_every_output_with_one_newline() -> None:
    assert records.assemble([b"a", b"b\n", b"", b"c"], "Line") == b"a\nb\n\nc\n"


def test_assemble_none_concatenates_as_is() -> None:
    assert records.assemble([b"a", b"b\n", b"c"], "None") == b"ab\nc"
    assert records.assemble([], "None") == b""
    assert records.assemble([], "Line") == b""


def test_assemble_refuses_other_values() -> None:
    with pytest.raises(ValueError):
        records.assemble([b"a"], "Lines")


def test_record_error_at_places_the_error_at_a_record() -> None:
    error = RecordError("bad")
    placed = error.at(4)
    assert (placed.index, placed.message, str(placed)) == (4, "bad", "bad")
    assert error.index is None
