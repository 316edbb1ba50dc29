"""Building batch Inputs and routing batch Outputs back to their requests."""

from __future__ import annotations

import json

from modelhost.worker.handler.batch_format import build_batch_input, split_batch_output
from modelhost.worker.handler.djl import Input, Output

ENGINE = {"handler": "handle", "device_id": "-1", "model_dir": "/m"}


def request(body: bytes, **props: str) -> Input:
    inputs = Input()
    inputs.properties.update(props)
    inputs.content.add("data", bytearray(body))
    return inputs


def test_single_request_stays_plain() -> None:
    built = build_batch_input([request(b"x", accept="a")], ENGINE)
    assert not built.is_batch()
    assert built.get_properties() == {"accept": "a", **ENGINE}


def test_batch_uses_zero_padded_per_item_keys() -> None:
    built = build_batch_input([request(b"a", accept="x"), request(b"b", accept="y")], ENGINE)
    assert built.get_properties() == {
        "batch_size": "2",
        **ENGINE,
        "batch_000.accept": "x",
        "batch_001.accept": "y",
    }
    assert built.content.get_keys() == ["batch_000.data", "batch_001.data"]
    items = built.get_batches()
    assert [i.get_as_string() for i in items] == ["a", "b"]
    assert [i.get_property("Accept") for i in items] == ["x", "y"]


def test_results_route_by_batch_index_with_shared_properties() -> None:
    out = Output().add_property("content-type", "text/plain").add_property("batch_1_Content-Type", "x/y")
    out.add("second", batch_index=1).add_as_json({"i": 0}, batch_index=0)
    first, second = split_batch_output(out, 2)
    assert json.loads(first.content.get("data")) == {"i": 0}
    assert second.content.get("data") == b"second"
    assert first.get_property("content-type") == "text/plain"
    assert second.get_property("content-type") == "x/y"
    assert first.code == second.code == 200


def test_wrong_count_fails_every_request() -> None:
    out = Output().add("only one", batch_index=0)
    results = split_batch_output(out, 3)
    assert len(results) == 3
    for result in results:
        assert result.code == 424
        assert "Batch output size mismatch" in json.loads(result.content.value_at(0))["error"]


def test_none_fails_every_request() -> None:
    assert all(r.code == 424 for r in split_batch_output(None, 2))


def test_unkeyed_entry_is_a_mismatch() -> None:
    out = Output().add("a", batch_index=0).add("no index")
    assert all(r.code == 424 for r in split_batch_output(out, 2))


def test_error_code_goes_to_every_request() -> None:
    out = Output().error("model exploded", code=500)
    results = split_batch_output(out, 2)
    assert [r.code for r in results] == [500, 500]
    assert json.loads(results[1].content.value_at(0))["error"] == "model exploded"
