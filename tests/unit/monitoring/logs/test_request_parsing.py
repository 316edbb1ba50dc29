"""Requests checked before they run: the target, strict JSON, botocore's model, the IAM resource."""

from __future__ import annotations

import pytest

from modelhost.errors import ApiError
from modelhost.monitoring.logs.api import LOGS_TARGET_PREFIX, parse_call, parse_target


@pytest.mark.parametrize(
    "target", [None, "Logs_20140328.PutLogEvents", "Logs_20140328.", "SageMaker.GetLogEvents", "Logs_20140328.x/y"]
)
def test_targets_not_served_are_unknown_operations(target: str | None) -> None:
    with pytest.raises(ApiError) as refused:
        parse_target(target)
    assert refused.value.code == "UnknownOperationException" and refused.value.status == 400


@pytest.mark.parametrize(
    ("operation", "body", "code", "says"),
    [
        ("GetLogEvents", b'{"logGroupName": "/g"}', "InvalidParameterException", "at 'logStreamName'"),
        ("GetLogEvents", b'{"logStreamName": "s", "limit": 0}', "InvalidParameterException", "greater than or equal"),
        ("DescribeLogGroups", b'{"logGroupNamePrefix": "bad name!"}', "InvalidParameterException", "pattern"),
        ("DescribeLogStreams", b'{"orderBy": "Size"}', "InvalidParameterException", "enum value set"),
        ("FilterLogEvents", b'{"limit": "ten"}', "InvalidParameterException", "be a number"),
        ("FilterLogEvents", b"[1]", "SerializationException", "JSON object"),
        ("FilterLogEvents", b"{", "SerializationException", "not valid JSON"),
        ("FilterLogEvents", b'{"limit": 1e400}', "InvalidParameterException", "finite"),
        ("FilterLogEvents", b"[" * 100 + b"]" * 100, "InvalidParameterException", "deeper"),
        ("FilterLogEvents", b'{"filterPattern": "\\ud800"}', "InvalidParameterException", "surrogate"),
    ],
)
def test_bad_bodies_get_the_codes_boto3_expects(operation: str, body: bytes, code: str, says: str) -> None:
    with pytest.raises(ApiError, match=says) as refused:
        parse_call(operation, body)
    assert refused.value.code == code and refused.value.status == 400


def test_a_valid_call_names_its_action_and_log_group_arn() -> None:
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/E"
    call = parse_call("FilterLogEvents", b'{"logGroupIdentifier": "%s", "filterPattern": null}' % arn.encode())
    assert call.params == {"logGroupIdentifier": arn}
    assert call.action == "logs:FilterLogEvents"
    assert call.resource_arn("eu-west-1", "111") == "arn:aws:logs:eu-west-1:111:log-group:/aws/sagemaker/Endpoints/E"
    groups = parse_call("DescribeLogGroups", b"")
    assert groups.resource_arn("eu-west-1", "111") == "arn:aws:logs:eu-west-1:111:log-group:*"
    assert LOGS_TARGET_PREFIX == "Logs_20140328."
