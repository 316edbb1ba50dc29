"""The control plane's parse step: strict JSON, explicit nulls as absent, NextTokens that were not issued here."""

from __future__ import annotations

import base64
import json

import pytest

from modelhost.api.app import ControlPlaneApi
from modelhost.api.pagination import page
from modelhost.api.validation import operation_model, validate_input, without_null_members
from modelhost.errors import ApiError, ValidationError


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b'{"ModelName": "m", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "ValidationException", "nests deeper"),
        (b'{"MaxResults": ' + b"1" * 400 + b"}", "ValidationException", "more than 30 digits"),
        (b'{"ModelName": "\\ud800"}', "ValidationException", "lone UTF-16 surrogate"),
        (b'{"MaxResults": NaN}', "ValidationException", "NaN"),
        (b'{"CreationTimeAfter": 1e400}', "ValidationException", "'CreationTimeAfter' is not finite"),
        (b"{nope", "SerializationException", "not valid JSON"),
        (b"[1]", "ValidationException", "must be a JSON object"),
    ],
)
def test_hostile_bodies_are_client_errors(raw: bytes, code: str, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        ControlPlaneApi._parse_body(raw)
    assert caught.value.code == code and caught.value.status == 400 and words in caught.value.message


def test_explicit_nulls_of_optional_members_are_dropped_at_every_depth() -> None:
    model = operation_model("sagemaker", "CreateEndpointConfig")
    assert model is not None and model.input_shape is not None
    body = {
        "EndpointConfigName": "c",
        "KmsKeyId": None,
        "ProductionVariants": [{"VariantName": "v", "ModelName": "m", "InitialVariantWeight": None}],
        "Tags": None,
    }
    validate_input(model, body)
    assert without_null_members(model.input_shape, body) == {
        "EndpointConfigName": "c",
        "ProductionVariants": [{"VariantName": "v", "ModelName": "m"}],
    }


def test_a_null_required_member_is_still_refused() -> None:
    model = operation_model("sagemaker", "CreateModel")
    assert model is not None
    with pytest.raises(ValidationError, match="modelName' failed to satisfy constraint: Member must not be null"):
        validate_input(model, {"ModelName": None})


def token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    "bad",
    [
        token({"o": 1e400, "f": "x"}),  # json.dumps writes Infinity
        base64.urlsafe_b64encode(b'{"o": 1e400, "f": "x"}').decode(),
        token({"o": 10**400, "f": "x"}),
        token({"o": -1, "f": "x"}),
        token({"o": 1.5, "f": "x"}),
        token({"o": True, "f": "x"}),
        token({"o": "3", "f": "x"}),
        token([1, 2]),
        token("x"),
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
        "!!!",
    ],
)
def test_next_tokens_not_issued_here_are_validation_errors(bad: str) -> None:
    with pytest.raises(ValidationError, match="Invalid pagination token"):
        page([{"Name": "a", "CreationTime": 1.0}], {"NextToken": bad}, name_key="Name", sort_keys={})
