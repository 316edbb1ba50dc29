"""InvokeEndpointAsync's header checks, result naming and SNS messages (pure)."""

from __future__ import annotations

import json

import pytest

from modelhost.async_inference.intake import parse_invocation
from modelhost.async_inference.locations import object_name, result_locations
from modelhost.async_inference.notify import notification, response_body, topic_region
from modelhost.async_inference.records import AsyncRequest, request_key
from modelhost.errors import RuntimeValidationError

INPUT = "x-amzn-sagemaker-inputlocation"


def test_defaults_and_members() -> None:
    parsed = parse_invocation({INPUT: "s3://bkt/in.json", "x-amzn-sagemaker-content-type": "application/json"}, b"")
    assert parsed.input_location == "s3://bkt/in.json" and parsed.content_type == "application/json"
    assert parsed.ttl_s == 21_600 and parsed.timeout_s == 900 and parsed.inference_id is None
    inline = parse_invocation({}, b"payload")
    assert inline.inline_body == b"payload" and inline.input_location is None


@pytest.mark.parametrize(
    ("headers", "body", "words"),
    [
        ({}, b"", "InputLocation is required"),
        ({INPUT: "s3://bkt/k"}, b"x", "mutually exclusive"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-requestttlseconds": "59"}, b"",
         "at 'requestTTLSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-requestttlseconds": "21601"}, b"", "less than or equal to 21600"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-requestttlseconds": "soon"}, b"", "whole number"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-invocationtimeoutseconds": "0"}, b"", "invocationTimeoutSeconds"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-invocationtimeoutseconds": "3601"}, b"", "3600"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-inference-id": " lead"}, b"", "inferenceId"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-inference-id": "x" * 65}, b"", "length less than or equal to 64"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-filename": "a.b.c"}, b"", "filename"),
        ({INPUT: "s3://bkt/k", "x-amzn-sagemaker-s3outputpathextension": "a/../b"}, b"", "s3OutputPathExtension"),
        ({}, b"x" * 128_001, "128000"),
    ],
)  # fmt: skip
def test_bad_requests_are_validation_errors(headers: dict[str, str], body: bytes, words: str) -> None:
    with pytest.raises(RuntimeValidationError) as caught:
        parse_invocation(headers, body)
    assert words in caught.value.message and caught.value.status == 400


def test_result_names() -> None:
    assert object_name("abc-1.2") == "abc-1.2"
    assert object_name("a/b") != "a/b" and len(object_name("a b")) == 36
    assert result_locations("s3://bkt/out/", "s3://bkt/fail", "id1", None, None) == (
        "s3://bkt/out/id1.out", "s3://bkt/fail/id1-error.out")  # fmt: skip
    assert result_locations("s3://bkt/out", None, "id1", "day/1", "r.json") == ("s3://bkt/out/day/1/r.json", None)
    assert result_locations("/tmp/out", "/tmp/fail", "id1", None, None) == ("/tmp/out/id1.out",
                                                                             "/tmp/fail/id1-error.out")  # fmt: skip


def request(**changes: object) -> AsyncRequest:
    base: dict[str, object] = dict(
        key=request_key(1700000000.0), endpoint="ep", inference_id="id-1", region="eu-west-1",
        output_location="s3://bkt/out/id-1.out", failure_location="s3://bkt/fail/id-1-error.out",
        received=1700000000.0, expires=1700003600.0, invocation_timeout_s=900.0, input_location="s3://bkt/in",
        content_type="text/csv",
    )  # fmt: skip
    return AsyncRequest(**{**base, **changes})  # type: ignore[arg-type]


def test_success_message_has_sagemakers_shape() -> None:
    message = notification(request(), succeeded=True, event_time=1700000001.5, content_type="application/json",
                           included=b'{"a": 1}')  # fmt: skip
    assert message["invocationStatus"] == "Completed" and message["eventName"] == "InferenceResult"
    assert message["awsRegion"] == "eu-west-1" and message["inferenceId"] == "id-1"
    assert message["eventVersion"] == "1.0" and message["eventSource"] == "aws:sagemaker"
    assert message["eventTime"] == "2023-11-14T22:13:21.500Z" and message["receivedTime"] == "2023-11-14T22:13:20.000Z"
    parameters = {"endpointName": "ep", "inputLocation": "s3://bkt/in", "contentType": "text/csv"}
    assert message["requestParameters"] == parameters
    response = {"contentType": "application/json", "outputLocation": "s3://bkt/out/id-1.out"}
    assert message["responseParameters"] == response
    assert message["responseBody"] == {"content": '{"a": 1}', "encoding": "TEXT"}
    json.dumps(message)


def test_failure_message() -> None:
    message = notification(request(), succeeded=False, event_time=1700000001.0, content_type="text/plain",
                           failure_reason="ModelError: boom")  # fmt: skip
    assert message["invocationStatus"] == "Failed" and message["failureReason"] == "ModelError: boom"
    assert message["responseParameters"]["failureLocation"] == "s3://bkt/fail/id-1-error.out"
    assert "outputLocation" not in message["responseParameters"] and "responseBody" not in message


def test_response_body_limits_and_binary() -> None:
    assert response_body(b"\xff\x00") == {"content": "/wA=", "encoding": "BASE64"}
    assert response_body(b"x" * (128 * 1024 + 1)) is None
    assert topic_region("arn:aws:sns:ap-south-1:123456789012:t") == "ap-south-1" and topic_region("bad") is None


def test_request_keys_sort_by_arrival() -> None:
    assert request_key(10.0) < request_key(10.5) < request_key(100.0)
