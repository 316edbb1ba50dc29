"""AsyncInferenceConfig parsed and checked from CreateEndpointConfig's shape (pure)."""

from __future__ import annotations

import pytest

from modelhost.errors import ValidationError
from modelhost.resources.async_inference import (
    DEFAULT_MAX_CONCURRENT_PER_INSTANCE,
    async_config_shape,
    check_async_variants,
    parse_async_config,
)

TOPIC = "arn:aws:sns:us-east-1:123456789012:done"


def allow(uri: str, for_write: bool) -> None:
    if uri.startswith("https://"):
        raise ValueError("http(s) is not accepted")


def test_a_full_config_is_typed_and_shown_back() -> None:
    shape = {
        "OutputConfig": {
            "S3OutputPath": "s3://b/out/",
            "S3FailurePath": "s3://b/fail/",
            "KmsKeyId": "ignored",
            "NotificationConfig": {
                "SuccessTopic": TOPIC,
                "ErrorTopic": TOPIC + "-err",
                "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"],
            },  # fmt: skip
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 7},
    }
    config = parse_async_config(shape, allow)
    assert config.output_path == "s3://b/out/" and config.failure_path == "s3://b/fail/"
    assert config.topic_for(True) == TOPIC and config.topic_for(False) == TOPIC + "-err"
    assert config.includes_response(True) and not config.includes_response(False)
    assert config.max_concurrent_per_instance == 7
    shown = async_config_shape(config)
    assert shown["OutputConfig"]["S3FailurePath"] == "s3://b/fail/"
    assert shown["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 7}


def test_defaults() -> None:
    config = parse_async_config({"OutputConfig": {"S3OutputPath": "/tmp/out"}}, allow)
    assert config.failure_path is None and config.success_topic is None and config.include_response_in == ()
    assert config.max_concurrent_per_instance == DEFAULT_MAX_CONCURRENT_PER_INSTANCE


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ({}, "OutputConfig is required"),
        ({"OutputConfig": {}}, "S3OutputPath is required"),
        ({"OutputConfig": {"S3OutputPath": "https://x/y"}}, "http(s) is not accepted"),
        ({"OutputConfig": {"S3OutputPath": "s3://b/o", "S3FailurePath": "https://x"}}, "S3FailurePath"),
        ({"OutputConfig": {"S3OutputPath": "s3://b/o"}, "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 0}},
         "from 1 to 1000"),
        ({"OutputConfig": {"S3OutputPath": "s3://b/o"},
          "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1001}}, "from 1 to 1000"),
        ({"OutputConfig": {"S3OutputPath": "s3://b/o", "NotificationConfig": {"IncludeInferenceResponseIn": ["X"]}}},
         "IncludeInferenceResponseIn"),
    ],
)  # fmt: skip
def test_bad_configs_are_refused_with_what_to_fix(shape: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_async_config(shape, allow)
    assert words in caught.value.message and caught.value.code == "ValidationException"


def test_one_variant_only() -> None:
    check_async_variants([{"VariantName": "a"}])
    with pytest.raises(ValidationError, match="exactly one production variant"):
        check_async_variants([{"VariantName": "a"}, {"VariantName": "b"}])
