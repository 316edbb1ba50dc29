from __future__ import annotations

import pytest

from modelhost.api.validation import operation_model, validate_input
from modelhost.errors import ValidationError


def check(operation: str, body: dict) -> str:
    model = operation_model("sagemaker", operation)
    assert model is not None
    with pytest.raises(ValidationError) as exc:
        validate_input(model, body)
    return exc.value.message


def test_valid_request_passes() -> None:
    model = operation_model("sagemaker", "CreateEndpointConfig")
    validate_input(
        model,
        {
            "EndpointConfigName": "cfg-1",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "m",
                    "InstanceType": "ml.g5.2xlarge",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1,
                }
            ],
        },
    )


def test_length_pattern_and_enum_messages() -> None:
    message = check("CreateModel", {"ModelName": "a" * 64})
    assert message == (
        f"1 validation error detected: Value '{'a' * 64}' at 'modelName' failed to satisfy constraint: "
        "Member must have length less than or equal to 63"
    )
    assert "Member must satisfy regular expression pattern: [a-zA-Z0-9]" in check(
        "CreateModel", {"ModelName": "bad_name!"}
    )
    message = check(
        "CreateEndpointConfig",
        {
            "EndpointConfigName": "c",
            "ProductionVariants": [{"VariantName": "v", "InstanceType": "ml.nope", "InitialInstanceCount": 0}],
        },
    )
    assert message.startswith("2 validation errors detected: ")
    assert (
        "at 'productionVariants.1.member.instanceType' failed to satisfy constraint: Member must satisfy enum"
        in message
    )
    assert "at 'productionVariants.1.member.initialInstanceCount'" in message
    assert "Member must have value greater than or equal to 1" in message


def test_required_members_and_types() -> None:
    assert "at 'endpointConfigName' failed to satisfy constraint: Member must not be null" in check(
        "CreateEndpoint", {"EndpointName": "e"}
    )
    assert "Member must be a number" in check("ListModels", {"MaxResults": "ten"})


def test_model_data_url_pattern_is_relaxed_for_local_paths() -> None:
    model = operation_model("sagemaker", "CreateModel")
    validate_input(model, {"ModelName": "m", "PrimaryContainer": {"Image": "i", "ModelDataUrl": "/tmp/model.tar.gz"}})


def test_unknown_operation_is_none() -> None:
    assert operation_model("sagemaker", "NoSuchOperation") is None
