"""Records survive the store's JSON form exactly, and a row that does not fit is refused with where."""

from __future__ import annotations

import json

import pytest

from modelhost.resources.endpoint import Endpoint, PendingUpdate, initial_state
from modelhost.resources.model import Container, Model, S3ModelData, Tag
from modelhost.store.codec import decode, encode
from tests.fakes.records import NOW, endpoint, variant_spec


def roundtrip(record: object) -> object:
    return decode(type(record), json.loads(json.dumps(encode(record))))


def test_records_round_trip() -> None:
    spec = variant_spec(model_name="m2")
    pending = PendingUpdate("cfg2", (spec,), (initial_state(spec.variant, NOW),), NOW)
    record = endpoint()
    assert roundtrip(record) == record
    updating = endpoint(status=record.status.IN_SERVICE).begin_update(pending, NOW)
    assert roundtrip(updating) == updating
    model = Model("m", "arn", NOW, Container("img", None, S3ModelData("s3://b/p/", "S3Prefix", "None"), {"A": "1"}),
                  (Tag("k", "v"),), {"ModelName": "m", "Nested": [{"x": 1}]})  # fmt: skip
    assert roundtrip(model) == model


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.update(status="Bogus"), "Endpoint.status"),
        (lambda d: d.pop("name"), "Endpoint: missing name"),
        (lambda d: d.update(created="yesterday"), "Endpoint.created"),
        (lambda d: d["states"][0].update(desired_count=True), "Endpoint.states[0].desired_count"),
        (lambda d: d.update(variants={}), "Endpoint.variants"),
    ],
)
def test_a_row_that_does_not_fit_names_the_field(change: object, where: str) -> None:
    data = encode(endpoint())
    change(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=where.replace("[", r"\[").replace("]", r"\]")):
        decode(Endpoint, data)
