"""The djl_python shim: Input and Output behave as DJL's do."""

from __future__ import annotations

import datetime
import json

import pytest

from modelhost.worker.handler.djl import Input, Output, PairList


def make_input(props: dict[str, str], **content: bytes) -> Input:
    inputs = Input()
    inputs.properties.update(props)
    for key, value in content.items():
        inputs.content.add(key, bytearray(value))
    return inputs


def test_shim_is_the_top_level_djl_python_package() -> None:
    import djl_python
    from djl_python.inputs import Input as InputsInput
    from djl_python.outputs import Output as OutputsOutput

    assert djl_python.Input is Input is InputsInput
    assert djl_python.Output is Output is OutputsOutput
    assert not hasattr(Output(), "add_as_string")


def test_property_lookup_is_case_insensitive() -> None:
    inputs = make_input({"Content-Type": "application/json"})
    assert inputs.get_property("content-type") == "application/json"
    assert inputs.get_property("CONTENT-TYPE") == "application/json"
    assert inputs.get_property("missing") is None


def test_key_rules_of_get_as_bytes() -> None:
    assert Input().get_as_bytes() is None
    assert Input().is_empty()
    first = make_input({}, a=b"first", b=b"second")
    assert first.get_as_bytes() == b"first"
    with_data = make_input({}, a=b"first", data=b"the data")
    assert with_data.get_as_string() == "the data"
    assert with_data.get_as_string("a") == "first"
    with pytest.raises(KeyError):
        with_data.get_as_bytes("nope")
    assert with_data.contains_key("a") and not with_data.contains_key("zz")


def test_get_data_dispatches_on_content_type() -> None:
    assert make_input({"content-type": "application/json"}, data=b'{"x": 1}').get_data() == {"x": 1}
    assert make_input({"Content-Type": "text/plain"}, data=b"hi").get_data() == "hi"
    assert make_input({}, data=b"\x00\x01").get_data() == bytearray(b"\x00\x01")
    assert make_input({"content-type": "text/csv"}, data=b"a,b\n1,2\n").get_as_csv() == [{"a": "1", "b": "2"}]


def test_numpy_ndlist_round_trip() -> None:
    np = pytest.importorskip("numpy")
    arrays = [np.arange(6, dtype="float32").reshape(2, 3), np.array([1, 2], dtype="int64")]
    out = Output().add_as_numpy(arrays)
    inputs = make_input({"content-type": "tensor/ndlist"}, data=bytes(out.content.value_at(0)))
    decoded = inputs.get_data()
    assert len(decoded) == 2
    assert (decoded[0] == arrays[0]).all() and decoded[0].shape == (2, 3)
    assert (decoded[1] == arrays[1]).all()


def test_batch_input_splits_into_per_item_inputs() -> None:
    batch = make_input(
        {
            "batch_size": "2",
            "handler": "handle",
            "batch_000.content-type": "text/plain",
            "batch_001.X-Custom": "y",
        }
    )
    batch.content.add("batch_000.data", bytearray(b"zero"))
    batch.content.add("batch_001.data", bytearray(b"one"))
    assert batch.is_batch() and batch.get_batch_size() == 2
    items = batch.get_batches()
    assert [i.get_as_string() for i in items] == ["zero", "one"]
    assert items[0].get_properties() == {"content-type": "text/plain"}
    assert items[1].get_property("x-custom") == "y"
    single = make_input({}, data=b"x")
    assert not single.is_batch() and single.get_batches() == [single]


def test_output_add_encodes_and_keys_batches() -> None:
    out = Output().add("text").add(b"raw", key="b").add({"a": 1}, batch_index=3)
    assert out.content.get_keys() == ["data", "b", "batch_3.data"]
    assert out.content.value_at(0) == b"text"
    assert out.content.value_at(1) == b"raw"
    assert json.loads(out.content.value_at(2)) == {"a": 1}


def test_add_as_json_pretty_prints_like_djl() -> None:
    np = pytest.importorskip("numpy")
    out = Output().add_as_json({"t": "é", "n": np.int64(3), "a": np.array([1.5]), "d": datetime.date(2024, 1, 2)})
    text = bytes(out.content.value_at(0)).decode("utf-8")
    assert text == '{\n  "t":"é",\n  "n":3,\n  "a":[\n    1.5\n  ],\n  "d":"2024-01-02"\n}'
    with pytest.raises(ValueError):
        Output().add_as_json({"x": float("nan")})


def test_error_sets_code_content_type_and_body() -> None:
    out = Output().error("boom")
    assert out.code == 424
    assert out.get_property("Content-Type") == "application/json"
    assert json.loads(out.content.value_at(0)) == {
        "code": 424,
        "message": "invoke handler failure",
        "error": "boom",
    }
    custom = Output().error("bad", code=400, message="nope")
    assert (custom.code, custom.message) == (400, "nope")


def test_setters_chain() -> None:
    out = Output().set_code(201).set_message("Created")
    assert (out.code, out.message) == (201, "Created")


def test_default_stream_formatter_writes_json_lines() -> None:
    out = Output().add_stream_content(iter([["a", "b"], ["c"]]))
    chunks = [bytes(out.encode_stream_item(item)) for item in out.stream_content]
    assert chunks == [b'{"outputs": ["a", "b"]}\n', b'{"outputs": ["c"]}\n']
    raw = Output().add_stream_content(iter(["x", b"y", {"z": 1}]), output_formatter=None)
    assert [bytes(raw.encode_stream_item(i)) for i in raw.stream_content] == [b"x", b"y", b'{"z": 1}']


def test_finalize_runs_callbacks_and_survives_failures() -> None:
    seen: list[int] = []

    def fail() -> None:
        raise RuntimeError("x")

    out = Output().finalize(fail).finalize(seen.append, 7)
    out.execute_finalize()
    assert seen == [7]


def test_pair_list() -> None:
    pairs = PairList(pair_list=[("a", 1), ("b", 2)])
    pairs.add("a", 3)
    assert pairs.size() == 3 and pairs.get("a") == 1 and pairs.key_at(2) == "a" and not pairs.is_empty()
