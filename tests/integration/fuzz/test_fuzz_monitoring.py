"""Fuzzing CloudWatch, CloudWatch Logs and Application Auto Scaling through one real server, as
test_fuzz_api.py fuzzes the SageMaker APIs: for every operation each API implements (the servers' own tables),
bodies built from botocore's input shape (valid and clean values that reach the handlers, boundary lengths and
ranges, wrong types, huge and unicode strings with lone surrogates, nested junk, missing and unknown members,
deep nesting) written in every protocol the API speaks: CloudWatch in AWS JSON 1.0, smithy-rpc-v2-cbor and
the query protocol (form posts), Logs and Application Auto Scaling in AWS JSON 1.1; plus malformed, truncated,
gzip-wrapped and wrongly addressed bodies and odd headers.

The assertions: no answer is a 5xx (only CloudWatch Logs' 503 ServiceUnavailableException, "the log files were
not read; retry", is the API's own), every answer is in the request's protocol (JSON `{"__type", "message"}`,
CBOR the same, query XML `<ErrorResponse><Error><Code>`, `<Op>Response` on success), and afterwards the
server still answers each API in each protocol and deletes what the fuzzer made.

Deterministic (`derandomize=True`, no example database; only the "clean" timestamps follow the hour the run
starts, as the stores refuse stale data) and bounded: MONITORING_SHARE (0.4) of MODELHOST_FUZZ_EXAMPLES
(default 3000) cases on top of test_fuzz_api.py's, split between the APIs by API_SHARES and then evenly between
their operations: 1,200 by default, 660 CloudWatch, 180 Logs, 360 Application Auto Scaling. No Origin header
is sent: the server's cross-origin guard answers any (an empty one too) 403 before the API is reached.
"""

from __future__ import annotations

import functools
import gzip
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.model import ListShape, MapShape, Shape, StructureShape
from hypothesis import given
from hypothesis import strategies as st

from modelhost.autoscaling.operations import OPERATIONS as AAS_OPERATIONS
from modelhost.monitoring.cloudwatch_api import OPERATIONS as CW_OPERATIONS
from modelhost.monitoring.logs.api import OPERATIONS as LOGS_OPERATIONS
from tests.integration.fuzz.test_fuzz_api import (
    MALFORMED_BODIES,
    ODD_STRINGS,
    fuzz_settings,
    json_junk,
    odd_headers,
    scalar_junk,
)
from tests.integration.fuzz.wire import (
    MALFORMED_CBOR,
    Blob,
    Stamp,
    cbor_bytes,
    form,
    indefinite,
    json_text,
    query_pairs,
    shape_problem,
)
from tests.integration.server import ServerProcess

# of MODELHOST_FUZZ_EXAMPLES, on top of test_fuzz_api.py's; split CloudWatch (three protocols), Logs, AAS
MONITORING_SHARE = 0.4
API_SHARES = {"cloudwatch": 0.55, "logs": 0.15, "application-autoscaling": 0.3}
SESSION = botocore.session.get_session()
ENDPOINTS = ["fz-a", "fz-b"]  # seeded endpoints (their deployment fails fast: records, variants, log folders)
# "clean" timestamps are near the hour the run starts (the stores refuse data too old or in the future): the
# generated requests are the same in every run but for those
NOW = int(time.time()) // 3600 * 3600


@dataclass(frozen=True)
class Api:
    service: str  # botocore's name
    operations: tuple[str, ...]  # what the server implements, from its own dispatch table
    protocols: tuple[str, ...]  # "json", "cbor", "query"
    target_prefix: str  # X-Amz-Target prefix of the JSON protocol
    content_type: str
    pools: Mapping[str, Sequence[Any]]  # member name -> values that name real or reusable things
    retryable_503: str | None = None  # the error code of the API's own 503

    def model(self) -> Any:
        return SESSION.get_service_model(self.service)


RESOURCE_IDS = [f"endpoint/{name}/variant/AllTraffic" for name in ENDPOINTS] + [
    "endpoint/fz-a/variant/Other",
    "endpoint/nosuch/variant/AllTraffic",
    "endpoint/fz-a",
]
LOG_GROUPS = [f"/aws/sagemaker/Endpoints/{name}" for name in ENDPOINTS] + ["/aws/sagemaker/Endpoints/nosuch"]
APIS = {
    "cloudwatch": Api(
        "cloudwatch",
        tuple(sorted(CW_OPERATIONS)),
        ("json", "cbor", "query"),
        "GraniteServiceVersion20100801.",
        "application/x-amz-json-1.0",
        {
            "Namespace": ["AWS/SageMaker", "fz/ns", "/aws/sagemaker/Endpoints"],
            "MetricName": ["Invocations", "ModelLatency", "fz-metric"],
            "AlarmName": ["fz-alarm-a", "fz-alarm-b"],
            "AlarmNamePrefix": ["fz-", ""],
            "Name": ["EndpointName", "VariantName"],
            "Value": [*ENDPOINTS, "AllTraffic"],
            "Id": ["m1", "e1", "a"],
            "Expression": ["m1 * 2", "SUM(METRICS())", "FILL(m1, 0)", "m1 / 0", "RATE(m1)", "((((", "m1 +"],
            "AlarmActions": ["arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x:resource/y:policyName/z"],
        },
    ),
    "logs": Api(
        "logs",
        tuple(sorted(LOGS_OPERATIONS)),
        ("json",),
        "Logs_20140328.",
        "application/x-amz-json-1.1",
        {
            "logGroupName": LOG_GROUPS,
            "logGroupIdentifier": [*LOG_GROUPS, "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/x:*"],
            "logGroupNamePrefix": ["/aws/sagemaker/", "/aws/sagemaker/Endpoints/fz"],
            "logStreamName": ["modelhost/endpoint-events", "AllTraffic/alltraffic-1"],
            "logStreamNamePrefix": ["modelhost/", "AllTraffic/"],
            "filterPattern": ["ERROR", '"a b"', "?x ?y", "-x", "{ $.a = 1 }", "[ip, user, ...]", "{ $.a = ", '"'],
        },
        retryable_503="ServiceUnavailableException",
    ),
    "application-autoscaling": Api(
        "application-autoscaling",
        tuple(sorted(AAS_OPERATIONS)),
        ("json",),
        "AnyScaleFrontendService.",
        "application/x-amz-json-1.1",
        {
            "ServiceNamespace": ["sagemaker"],
            "ScalableDimension": ["sagemaker:variant:DesiredInstanceCount"],
            "ResourceId": RESOURCE_IDS,
            "ResourceIds": [RESOURCE_IDS[:1], RESOURCE_IDS],
            "PolicyName": ["fz-policy-a", "fz-policy-b"],
            "PolicyNames": [["fz-policy-a"]],
            "ScheduledActionName": ["fz-action-a", "fz-action-b"],
            "Schedule": ["rate(5 minutes)", "at(2030-01-01T00:00:00)", "cron(0 * * * ? *)", "rate(0 hours)", "cron(x)"],
            "Timezone": ["UTC", "Europe/Berlin", "Nowhere/Else"],
            "PredefinedMetricType": ["SageMakerVariantInvocationsPerInstance"],
        },
    ),
}


# ---- values from botocore shapes -----------------------------------------------------------------------------


def _string(shape: Shape, name: str, pools: Mapping[str, Sequence[Any]]) -> st.SearchStrategy[Any]:
    low = int(shape.metadata.get("min", 0))
    high = int(shape.metadata.get("max", 256))
    bounds = [low, high, high + 1] + ([low - 1] if low > 0 else [])
    options: list[st.SearchStrategy[Any]] = [
        st.text(min_size=low, max_size=max(low, min(high, 40))),
        st.sampled_from(bounds).map(lambda n: "a" * n),
        st.sampled_from(ODD_STRINGS),
    ]
    if shape.enum:
        options = [st.sampled_from(list(shape.enum))] * 2 + options[1:]
    if name in pools:
        options = [st.sampled_from(list(pools[name]))] * 3 + options
    return st.one_of(options)


def _number(shape: Shape) -> st.SearchStrategy[Any]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    edges = [v for v in (low, high) if v is not None]
    edges += ([low - 1] if low is not None else []) + ([high + 1] if high is not None else [])
    if shape.type_name in ("float", "double"):
        return st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(edges or [0.0, -0.0]))
    return st.one_of(
        st.integers(min_value=low, max_value=high),
        st.sampled_from(edges or [0, -1]),
        st.sampled_from([2**31, 2**63, -(2**63) - 1]),
    )


def _stamp() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=NOW - 30 * 86400, max_value=NOW + 3600).map(Stamp),
        st.integers(min_value=-(2**40), max_value=2**40).map(Stamp),
        st.floats(allow_nan=False, allow_infinity=False).map(Stamp),
        st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", "", "1e400"]),
    )


def valid_ish(shape: Shape, name: str, depth: int, pools: Mapping[str, Sequence[Any]]) -> st.SearchStrategy[Any]:
    """Values shaped like `shape`: mostly valid, with boundary lengths and ranges mixed in."""
    if name in pools and shape.type_name != "string":  # lists of names
        return st.one_of(st.sampled_from(list(pools[name])), _valid_ish(shape, name, depth, pools))
    return _valid_ish(shape, name, depth, pools)


def _valid_ish(shape: Shape, name: str, depth: int, pools: Mapping[str, Sequence[Any]]) -> st.SearchStrategy[Any]:
    if isinstance(shape, StructureShape):
        return structure(shape, depth, pools)
    if isinstance(shape, ListShape):
        low = int(shape.metadata.get("min", 0))
        high = max(min(low, 3), 3)
        items = value_for(shape.member, name, depth + 1, pools)
        return st.one_of(
            st.lists(items, min_size=min(low, 3), max_size=high), st.lists(items, min_size=40, max_size=120)
        )
    if isinstance(shape, MapShape):
        keys = st.one_of(_string(shape.key, "", pools), st.text(max_size=10))
        return st.dictionaries(keys, value_for(shape.value, "", depth + 1, pools), max_size=3)
    kind = shape.type_name
    if kind == "string":
        return _string(shape, name, pools)
    if kind in ("integer", "long", "float", "double"):
        return _number(shape)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return _stamp()
    if kind == "blob":
        return st.binary(max_size=40).map(Blob)
    return st.text(max_size=20)


def value_for(shape: Shape, name: str, depth: int, pools: Mapping[str, Sequence[Any]]) -> st.SearchStrategy[Any]:
    """Mostly the shape's own kind of value; sometimes a wrong type or nested junk."""
    if depth > 5:
        return scalar_junk
    mine = valid_ish(shape, name, depth, pools)
    return st.one_of(mine, mine, json_junk)


def structure(shape: StructureShape, depth: int, pools: Mapping[str, Sequence[Any]]) -> st.SearchStrategy[Any]:
    required = set(shape.required_members)
    members = dict(shape.members)
    if depth > 2:  # deep structures small (and generation fast): required members only
        members = {k: v for k, v in members.items() if k in required}
    mandatory = {k: value_for(v, k, depth + 1, pools) for k, v in members.items() if k in required}
    optional = {k: value_for(v, k, depth + 1, pools) for k, v in members.items() if k not in required}
    complete = st.fixed_dictionaries(mandatory, optional=optional)
    partial = st.fixed_dictionaries({}, optional={**mandatory, **optional})  # a required member missing
    extra = st.dictionaries(st.text(max_size=12), json_junk, max_size=2)  # unknown members
    return st.one_of(complete, complete, partial, st.tuples(complete, extra).map(lambda t: {**t[1], **t[0]}))


CLEAN_TEXT = "abcdefghij0123456789"


def clean_value(shape: Shape, name: str, depth: int, pools: Mapping[str, Sequence[Any]]) -> st.SearchStrategy[Any]:
    """Values that pass validation where a member has no pattern beyond letters and digits, or name the pools'
    real things: these reach the handlers and the stores."""
    if name in pools and (shape.type_name == "string" or isinstance(pools[name][0], list)):
        return st.sampled_from(list(pools[name]))
    if isinstance(shape, StructureShape):
        members = {k: v for k, v in shape.members.items() if depth <= 1 or k in shape.required_members}
        required = {k: clean_value(v, k, depth + 1, pools) for k, v in members.items() if k in shape.required_members}
        optional = {
            k: clean_value(v, k, depth + 1, pools) for k, v in members.items() if k not in shape.required_members
        }
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(shape, ListShape):
        low = int(shape.metadata.get("min", 0))
        return st.lists(clean_value(shape.member, name, depth + 1, pools), min_size=low, max_size=max(low, 2))
    if isinstance(shape, MapShape):
        keys = st.text(alphabet=CLEAN_TEXT, min_size=1, max_size=10)
        return st.dictionaries(keys, clean_value(shape.value, "", depth + 1, pools), max_size=2)
    kind, low, high = shape.type_name, shape.metadata.get("min"), shape.metadata.get("max")
    if kind == "string":
        if shape.enum:
            return st.sampled_from(list(shape.enum))
        shortest = max(int(low or 0), 1)
        return st.text(alphabet=CLEAN_TEXT, min_size=shortest, max_size=max(shortest, min(int(high or 20), 20)))
    if kind in ("integer", "long"):
        return st.integers(min_value=low if low is not None else 0, max_value=high if high is not None else 1000)
    if kind in ("float", "double"):
        return st.floats(min_value=low if low is not None else 0.0, max_value=high if high is not None else 100.0)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.integers(min_value=NOW - 86400, max_value=NOW + 600).map(Stamp)
    if kind == "blob":
        return st.binary(max_size=10).map(Blob)
    return st.text(alphabet=CLEAN_TEXT, max_size=10)


def _one_of(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


_AAS_TARGET = {
    "ServiceNamespace": st.just("sagemaker"),
    "ResourceId": _one_of(*RESOURCE_IDS[:2]),
    "ScalableDimension": st.just("sagemaker:variant:DesiredInstanceCount"),
}
_METRIC = st.fixed_dictionaries(
    {"Namespace": _one_of("fz/ns", "AWS/SageMaker"), "MetricName": _one_of("fz-metric", "Invocations")},
    optional={
        "Dimensions": st.lists(
            st.fixed_dictionaries({"Name": _one_of("EndpointName"), "Value": _one_of(*ENDPOINTS)}), max_size=1
        )
    },
)
_WINDOW = {
    "StartTime": st.integers(min_value=-7 * 86400, max_value=-60).map(lambda d: Stamp(NOW + d)),
    "EndTime": st.integers(min_value=0, max_value=3600).map(lambda d: Stamp(NOW + d)),
}
_STATS = _one_of("Sum", "Average", "SampleCount", "Minimum", "Maximum", "p99", "tm90", "PR(10:)", "p101")
# Valid calls of the operations whose members depend on one another (what `clean_value` cannot know), with
# some members drawn from small sets: these reach the handlers beyond validation.
TEMPLATES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("cloudwatch", "PutMetricData"): st.fixed_dictionaries(
        {
            "Namespace": _one_of("fz/ns", "fz/other"),
            "MetricData": st.lists(
                st.fixed_dictionaries(
                    {"MetricName": _one_of("fz-metric", "fz-other"), "Value": st.floats(min_value=-1e9, max_value=1e9)},
                    optional={
                        "Timestamp": st.integers(min_value=-86400, max_value=600).map(lambda d: Stamp(NOW + d)),
                        "Unit": _one_of("Count", "Seconds", "None", "Bytes/Second"),
                        "Dimensions": st.lists(
                            st.fixed_dictionaries({"Name": _one_of("EndpointName"), "Value": _one_of(*ENDPOINTS)}),
                            max_size=1,
                        ),
                        "StorageResolution": _one_of(1, 60),
                        "Values": st.lists(st.floats(min_value=0, max_value=100), max_size=5),
                        "Counts": st.lists(st.floats(min_value=0, max_value=10), max_size=5),
                        "StatisticValues": st.fixed_dictionaries(
                            {
                                "SampleCount": _one_of(1.0, 5.0),
                                "Sum": _one_of(1.0, 9.0),
                                "Minimum": _one_of(0.0),
                                "Maximum": _one_of(3.0),
                            }
                        ),
                    },
                ),
                min_size=1,
                max_size=4,
            ),
        }
    ),
    ("cloudwatch", "GetMetricStatistics"): st.tuples(
        st.fixed_dictionaries(
            {
                "Namespace": _one_of("fz/ns", "AWS/SageMaker"),
                "MetricName": _one_of("fz-metric", "Invocations"),
                **_WINDOW,
                "Period": _one_of(60, 300, 3600, 10, 61),
            },
            optional={
                "Unit": _one_of("Count", "Seconds"),
                "Dimensions": st.just([{"Name": "EndpointName", "Value": "fz-a"}]),
            },
        ),
        st.one_of(
            st.fixed_dictionaries(
                {
                    "Statistics": st.lists(
                        _one_of("Sum", "Average", "SampleCount", "Minimum", "Maximum"), min_size=1, max_size=3
                    )
                }
            ),
            st.fixed_dictionaries(
                {"ExtendedStatistics": st.lists(_one_of("p99", "tm90", "p101"), min_size=1, max_size=2)}
            ),
        ),
    ).map(lambda t: {**t[0], **t[1]}),
    ("cloudwatch", "GetMetricData"): st.fixed_dictionaries(
        {
            "MetricDataQueries": st.tuples(
                st.fixed_dictionaries(
                    {
                        "Id": st.just("m1"),
                        "MetricStat": st.fixed_dictionaries(
                            {"Metric": _METRIC, "Period": _one_of(60, 300), "Stat": _STATS}
                        ),
                    },
                    optional={"ReturnData": st.booleans()},
                ),
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "Id": _one_of("e1", "e2"),
                            "Expression": st.sampled_from(list(APIS["cloudwatch"].pools["Expression"])),
                        }
                    ),
                    max_size=1,
                ),
            ).map(lambda t: [t[0], *t[1]]),
            **_WINDOW,
        },
        optional={
            "ScanBy": _one_of("TimestampDescending", "TimestampAscending"),
            "MaxDatapoints": _one_of(1, 100, 100800),
        },
    ),
    ("cloudwatch", "PutMetricAlarm"): st.fixed_dictionaries(
        {
            "AlarmName": _one_of("fz-alarm-a", "fz-alarm-b"),
            "Statistic": _one_of("Sum", "Average", "Maximum"),
            "Namespace": _one_of("fz/ns", "AWS/SageMaker"),
            "MetricName": _one_of("fz-metric", "Invocations"),
            "Period": _one_of(10, 60, 300),
            "EvaluationPeriods": _one_of(1, 3),
            "Threshold": st.floats(min_value=-10, max_value=10),
            "ComparisonOperator": _one_of("GreaterThanThreshold", "LessThanLowerThreshold", "LessThanThreshold"),
        },
        optional={
            "DatapointsToAlarm": _one_of(1, 2, 5),
            "TreatMissingData": _one_of("breaching", "notBreaching", "ignore", "missing", "junk"),
            "ActionsEnabled": st.booleans(),
            "AlarmActions": st.just(list(APIS["cloudwatch"].pools["AlarmActions"])),
            "Dimensions": st.lists(
                st.fixed_dictionaries({"Name": _one_of("EndpointName"), "Value": _one_of(*ENDPOINTS)}), max_size=1
            ),
        },
    ),
    ("logs", "GetLogEvents"): st.fixed_dictionaries(
        {"logGroupName": _one_of(*LOG_GROUPS[:2]), "logStreamName": _one_of("modelhost/endpoint-events")},
        optional={
            "startFromHead": st.booleans(),
            "limit": _one_of(1, 2, 10000),
            "startTime": _one_of(0, 1000 * (NOW - 86400)),
            "endTime": _one_of(1000 * (NOW + 86400)),
        },
    ),
    ("application-autoscaling", "RegisterScalableTarget"): st.fixed_dictionaries(
        {**_AAS_TARGET, "MinCapacity": _one_of(0, 1, 2), "MaxCapacity": _one_of(1, 2, 3)},
        optional={
            "SuspendedState": st.fixed_dictionaries(
                {}, optional={"DynamicScalingInSuspended": st.booleans(), "ScheduledScalingSuspended": st.booleans()}
            ),
        },
    ),
    ("application-autoscaling", "PutScalingPolicy"): st.fixed_dictionaries(
        {**_AAS_TARGET, "PolicyName": _one_of("fz-policy-a", "fz-policy-b")},
        optional={
            "PolicyType": _one_of("TargetTrackingScaling", "StepScaling"),
            "TargetTrackingScalingPolicyConfiguration": st.fixed_dictionaries(
                {
                    "TargetValue": _one_of(1.0, 70.0, 0.0),
                    "PredefinedMetricSpecification": st.just(
                        {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
                    ),
                },
                optional={"ScaleInCooldown": _one_of(0, 60), "DisableScaleIn": st.booleans()},
            ),
            "StepScalingPolicyConfiguration": st.fixed_dictionaries(
                {
                    "AdjustmentType": _one_of("ChangeInCapacity", "ExactCapacity", "PercentChangeInCapacity"),
                    "StepAdjustments": st.just([{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]),
                },
                optional={"Cooldown": _one_of(0, 60), "MetricAggregationType": _one_of("Average", "Maximum")},
            ),
        },
    ),
    ("application-autoscaling", "PutScheduledAction"): st.fixed_dictionaries(
        {**_AAS_TARGET, "ScheduledActionName": _one_of("fz-action-a", "fz-action-b")},
        optional={
            "Schedule": st.sampled_from(list(APIS["application-autoscaling"].pools["Schedule"])),
            "Timezone": _one_of("UTC", "Europe/Berlin"),
            "ScalableTargetAction": st.fixed_dictionaries(
                {}, optional={"MinCapacity": _one_of(0, 1), "MaxCapacity": _one_of(1, 2)}
            ),
            "StartTime": st.just(Stamp(NOW)),
            "EndTime": _one_of(Stamp(NOW + 86400), Stamp(NOW - 86400)),
        },
    ),
}


@functools.cache
def valid_values(service: str, operation: str) -> st.SearchStrategy[Any]:
    """Calls meant to pass validation: clean values, and the operation's template where it has one."""
    api = APIS[service]
    shape = api.model().operation_model(operation).input_shape
    clean = clean_value(shape, "", 0, api.pools) if shape is not None else st.just({})
    template = TEMPLATES.get((service, operation))
    return clean if template is None else st.one_of(template, clean, template)


@functools.cache
def input_values(service: str, operation: str) -> st.SearchStrategy[Any]:
    """The operation's input shape as a strategy, built once: half meant to be valid, half fuzzed."""
    api = APIS[service]
    shape = api.model().operation_model(operation).input_shape
    fuzzed = structure(shape, 0, api.pools) if shape is not None else json_junk
    return st.one_of(fuzzed, valid_values(service, operation))


# ---- requests ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    service: str
    operation: str
    protocol: str  # "json", "cbor", "query", or "query|json" (see wire.shape_problem)
    path: str
    headers: dict[str, bytes]
    body: bytes

    def shown(self) -> str:
        head = {k: v[:80] for k, v in self.headers.items()}
        return (
            f"{self.service} {self.operation} ({self.protocol}): POST {self.path} headers={head!r} "
            f"body={self.body[:300]!r} ({len(self.body)} bytes)"
        )


@st.composite
def _json_body(draw: st.DrawFn, service: str, operation: str) -> bytes:
    kind = draw(st.sampled_from(["valid"] * 3 + ["ascii"] * 3 + ["utf8", "cut", "malformed", "empty", "gzip"]))
    if kind == "valid":
        return json_text(draw(valid_values(service, operation)), ascii_only=True)
    value = input_values(service, operation)
    if kind == "malformed":
        return draw(st.sampled_from(MALFORMED_BODIES))
    if kind == "empty":
        return b""
    text = json_text(draw(value), ascii_only=kind != "utf8")
    if kind == "cut" and text:
        return text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    return gzip.compress(text, mtime=0) if kind == "gzip" else text


@st.composite
def json_case(draw: st.DrawFn, api: Api, operation: str) -> Case:
    body = draw(_json_body(api.service, operation))
    other = next(op for op in api.operations if op != operation)
    target = draw(
        st.sampled_from(
            [f"{api.target_prefix}{operation}"] * 10
            + [f"{api.target_prefix}{operation}Junk", api.target_prefix, f"{api.target_prefix}{other}"]
            + [f"{api.target_prefix.lower()}{operation}", f"{api.target_prefix}{operation}/x"]
        )
    )
    content_type = draw(st.sampled_from([api.content_type] * 4 + ["application/json", "", "text/plain"]))
    headers = {"X-Amz-Target": target.encode(), "Content-Type": content_type.encode()}
    headers.update(draw(headers_of_note()))
    if body[:2] == b"\x1f\x8b":
        headers["Content-Encoding"] = b"gzip"
    return Case(api.service, operation, "json", "/", headers, body)


@st.composite
def cbor_case(draw: st.DrawFn, api: Api, operation: str) -> Case:
    kind = draw(
        st.sampled_from(
            ["valid"] * 3 + ["cbor"] * 3 + ["indefinite", "cut", "malformed", "binary", "json", "empty", "gzip"]
        )
    )
    body: bytes
    if kind == "valid":
        body = cbor_bytes(draw(valid_values(api.service, operation)))
    elif kind == "malformed":
        body = draw(st.sampled_from(MALFORMED_CBOR))
    elif kind == "binary":
        body = draw(st.binary(max_size=64))
    elif kind == "empty":
        body = b""
    elif kind == "json":
        body = json_text(draw(input_values(api.service, operation)), ascii_only=True)
    else:
        body = cbor_bytes(draw(input_values(api.service, operation)))
        if kind == "indefinite":
            body = indefinite(body)
        elif kind == "cut" and body:
            body = body[: draw(st.integers(min_value=0, max_value=len(body) - 1))]
        elif kind == "gzip":
            body = gzip.compress(body, mtime=0)
    name = draw(st.sampled_from([operation] * 10 + [f"{operation}Junk", "", f"{operation}/x", operation.lower()]))
    path = f"/service/GraniteServiceVersion20100801/operation/{name}"
    headers = {
        "smithy-protocol": draw(st.sampled_from([b"rpc-v2-cbor"] * 8 + [b"rpc-v2-json", b""])),
        "Content-Type": draw(st.sampled_from([b"application/cbor"] * 4 + [b"application/json", b""])),
        "Accept": b"application/cbor",
    }
    headers.update(draw(headers_of_note()))
    if kind == "gzip":
        headers["Content-Encoding"] = b"gzip"
    return Case(api.service, operation, "cbor", path, headers, body)


QUERY_JUNK = [
    "&%zz=1",  # a bad percent escape
    "&a=%ff%fe",  # not UTF-8
    "&=x",
    "&Namespace.x=1&Namespace=2",  # a leaf and a structure of one name
    "&" + "a" * 3000 + "=1",
    "&MetricData.member.0.MetricName=x",
    "&MetricData.member.99999999999=x",
    "&MetricData.member.x=1",
    "&AlarmNames.member.1=a&AlarmNames.member.1=b",  # given twice
    "&" + "&".join(f"k{i}=v" for i in range(2000)),
    "&Dimensions.member.1.Name=a&Dimensions.member.1=b",
    "&" + ".".join(["a"] * 400) + "=1",
]


@st.composite
def query_case(draw: st.DrawFn, api: Api, operation: str) -> Case:
    shape = api.model().operation_model(operation).input_shape
    value = draw(st.one_of(input_values(api.service, operation), valid_values(api.service, operation)))
    pairs = query_pairs(value, shape) if isinstance(value, dict) else [("Junk", str(value))]
    head = draw(
        st.sampled_from(
            ["standard"] * 10 + ["no-version", "wrong-version", "no-action", "junk-action", "lower-action", "last"]
        )
    )
    action, version = ("Action", operation), ("Version", "2010-08-01")
    fields = {
        "standard": [action, version, *pairs],
        "no-version": [action, *pairs],
        "wrong-version": [action, ("Version", "2011-01-01"), *pairs],
        "no-action": [version, *pairs],
        "junk-action": [("Action", operation + "Junk"), version, *pairs],
        "lower-action": [("Action", operation.lower()), version, *pairs],
        "last": [*pairs, action, version],
    }[head]
    body = form(fields)
    tail = draw(st.sampled_from(["none"] * 8 + ["junk", "cut", "gzip", "bad-gzip"]))
    if tail == "junk":
        body += draw(st.sampled_from(QUERY_JUNK)).encode()
    elif tail == "cut" and body:
        body = body[: draw(st.integers(min_value=0, max_value=len(body) - 1))]
    elif tail == "gzip":
        body = gzip.compress(body, mtime=0)
    elif tail == "bad-gzip":
        body = gzip.compress(body, mtime=0)[:-6] + b"\x00" * 6
    content_type = draw(
        st.sampled_from(
            [b"application/x-www-form-urlencoded; charset=utf-8"] * 4
            + [b"application/x-www-form-urlencoded", b"APPLICATION/X-WWW-FORM-URLENCODED;charset=latin-1"]
        )
    )
    headers = {"Content-Type": content_type}
    headers.update({k: v for k, v in draw(headers_of_note()).items() if k != "Content-Encoding"})
    if tail in ("gzip", "bad-gzip"):
        headers["Content-Encoding"] = b"gzip"
    # CloudWatch recognises the query protocol by Version=2010-08-01 (or, without it, a known Action) in the
    # body's first 2 KiB; otherwise the answer is the JSON "not a CloudWatch request"
    sure = head == "standard" and tail in ("none", "junk", "gzip")
    return Case(api.service, operation, "query" if sure else "query|json", "/", headers, body)


def headers_of_note() -> st.SearchStrategy[dict[str, bytes]]:
    """test_fuzz_api.py's odd headers without Origin: the server's cross-origin guard answers any Origin (an
    empty one too) 403 `{"message"}` before the API, in no API's protocol."""
    return odd_headers().map(lambda d: {k: v for k, v in d.items() if k != "Origin"})


def case_for(api: Api, operation: str) -> st.SearchStrategy[Case]:
    makers = {"json": json_case, "cbor": cbor_case, "query": query_case}
    return st.one_of([makers[protocol](api, operation) for protocol in api.protocols])


# ---- sending and checking ------------------------------------------------------------------------------------


@dataclass
class Fuzzer:
    client: httpx.Client
    failures: list[str] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    sent: int = 0

    def send(self, case: Case) -> None:
        self.sent += 1
        try:
            headers = [(name.encode(), value) for name, value in case.headers.items()]
            answer = self.client.post(case.path, headers=headers, content=case.body)
        except httpx.HTTPError as exc:
            self.failures.append(f"no answer ({exc!r}) to {case.shown()}")
            return
        self.statuses[case.protocol, answer.status_code] += 1
        problem = shape_problem(case.protocol, case.operation, answer)
        if answer.status_code >= 500 and not self._retryable(case, answer):
            problem = f"a {answer.status_code}"
        if problem is not None:
            self.failures.append(f"{problem}: {answer.status_code} {answer.content[:300]!r} for {case.shown()}")

    @staticmethod
    def _retryable(case: Case, answer: httpx.Response) -> bool:
        code = APIS[case.service].retryable_503
        if code is None or answer.status_code != 503:
            return False
        try:
            return bool(answer.json()["__type"] == code)
        except (ValueError, KeyError, TypeError):
            return False

    def check(self) -> None:
        assert not self.failures, f"{len(self.failures)} of {self.sent} fuzzed requests failed:\n" + "\n".join(
            self.failures[:30]
        )


def boto_client(server: ServerProcess, service: str) -> Any:
    return _boto_client(server.url, service)


@functools.cache
def _boto_client(url: str, service: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-east-1"
    )
    config = Config(retries={"max_attempts": 1}, read_timeout=120)
    return session.client(service, endpoint_url=url, config=config)


def seed(server: ServerProcess) -> None:
    """Endpoints whose deployment fails fast (no worker starts): their records have the AllTraffic variant that
    scalable targets name, their log folders are log groups."""
    sm, _ = server.clients()
    for name in ENDPOINTS:
        container = {"Image": "djl-inference:0.22.1", "ModelDataUrl": "/nonexistent/modelhost-fuzz/model"}
        sm.create_model(ModelName=name, PrimaryContainer=container)
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": name,
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
        }
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def seed_records(server: ServerProcess) -> None:
    """A scalable target, a scaling policy, a scheduled action, an alarm and a metric (each put again if it is
    there), so fuzzed Describe/Put/Delete calls meet real records."""
    aas = boto_client(server, "application-autoscaling")
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": RESOURCE_IDS[0],
        "ScalableDimension": APIS["application-autoscaling"].pools["ScalableDimension"][0],
    }
    aas.register_scalable_target(**target, MinCapacity=1, MaxCapacity=2)
    aas.put_scaling_policy(
        **target,
        PolicyName="fz-policy-a",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 100.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        },
    )
    aas.put_scheduled_action(
        **target,
        ScheduledActionName="fz-action-a",
        Schedule="cron(0 3 * * ? *)",
        ScalableTargetAction={"MinCapacity": 1},
    )
    cw = boto_client(server, "cloudwatch")
    cw.put_metric_data(Namespace="fz/ns", MetricData=[{"MetricName": "fz-metric", "Value": 1.0}])
    cw.put_metric_alarm(
        AlarmName="fz-alarm-a",
        Namespace="fz/ns",
        MetricName="fz-metric",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )


@pytest.fixture(scope="module")
def monitoring_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz-monitoring-home")).start()
    seed(proc)
    seed_records(proc)
    yield proc
    proc.stop()


def _still_answers(client: httpx.Client) -> None:
    """One well-formed call per API and protocol, answered 200 in its protocol."""
    calls = [
        ("cloudwatch", "json", "/", {"X-Amz-Target": b"GraniteServiceVersion20100801.ListMetrics"}, b"{}"),
        (
            "cloudwatch",
            "cbor",
            "/service/GraniteServiceVersion20100801/operation/ListMetrics",
            {"smithy-protocol": b"rpc-v2-cbor", "Content-Type": b"application/cbor"},
            b"\xa0",
        ),
        (
            "cloudwatch",
            "query",
            "/",
            {"Content-Type": b"application/x-www-form-urlencoded"},
            b"Action=ListMetrics&Version=2010-08-01",
        ),
        ("logs", "json", "/", {"X-Amz-Target": b"Logs_20140328.DescribeLogGroups"}, b"{}"),
        (
            "application-autoscaling",
            "json",
            "/",
            {"X-Amz-Target": b"AnyScaleFrontendService.DescribeScalableTargets"},
            b'{"ServiceNamespace": "sagemaker"}',
        ),
    ]
    for service, protocol, path, headers, body in calls:
        answer = client.post(path, headers={k.encode(): v for k, v in headers.items()}, content=body)
        operation = path.rsplit("/", 1)[-1] if protocol == "cbor" else body.decode().split("&")[0][7:]
        assert answer.status_code == 200, (service, protocol, answer.status_code, answer.content[:300])
        if protocol == "query":
            assert shape_problem("query", operation, answer) is None, answer.content[:300]


def clean_up(server: ServerProcess) -> None:
    """Deregister every scalable target (its policies and actions go with it) and delete every alarm; they must
    all go."""
    aas = boto_client(server, "application-autoscaling")
    for page in aas.get_paginator("describe_scalable_targets").paginate(ServiceNamespace="sagemaker"):
        for target in page["ScalableTargets"]:
            aas.deregister_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=target["ResourceId"],
                ScalableDimension=target["ScalableDimension"],
            )
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    assert aas.describe_scheduled_actions(ServiceNamespace="sagemaker")["ScheduledActions"] == []
    cw = boto_client(server, "cloudwatch")
    names = [a["AlarmName"] for page in cw.get_paginator("describe_alarms").paginate() for a in page["MetricAlarms"]]
    for start in range(0, len(names), 100):
        cw.delete_alarms(AlarmNames=names[start : start + 100])
    assert cw.describe_alarms()["MetricAlarms"] == []
    groups = boto_client(server, "logs").describe_log_groups(logGroupNamePrefix="/aws/sagemaker/Endpoints/")
    assert {g["logGroupName"] for g in groups["logGroups"]} >= set(LOG_GROUPS[:2]), groups


@pytest.fixture
def fuzzer(monitoring_server: ServerProcess) -> Iterator[Fuzzer]:
    seed_records(monitoring_server)  # again: a fuzzed Deregister or Delete before may have removed them
    with httpx.Client(base_url=monitoring_server.url, trust_env=False, timeout=60) as client:
        fuzz = Fuzzer(client)
        yield fuzz
        _still_answers(client)
    fuzz.check()


CASES = [(service, operation) for service, api in APIS.items() for operation in api.operations]


@pytest.mark.parametrize(("service", "operation"), CASES, ids=[f"{s}.{o}" for s, o in CASES])
def test_operation(fuzzer: Fuzzer, service: str, operation: str) -> None:
    api = APIS[service]
    chosen = fuzz_settings(MONITORING_SHARE * API_SHARES[service], len(api.operations))

    @chosen
    @given(case=case_for(api, operation))
    def run(case: Case) -> None:
        fuzzer.send(case)

    run()
    reached = sum(n for (_, status), n in fuzzer.statuses.items() if status == 200)
    assert reached > 0 or chosen.max_examples < 30, f"no fuzzed {service} {operation} call succeeded: {fuzzer.statuses}"


XML_FORBIDDEN_ECHO = [
    b"Action=DeleteAlarms&Version=2010-08-01&AlarmNames.member.1=%01",
    b"Action=DescribeAlarmHistory&Version=2010-08-01&ScanBy=%01",
]


# found by this fuzzer (MODELHOST_FUZZ_EXAMPLES=30000): error messages echoing characters XML 1.0 forbids
@pytest.mark.parametrize("body", XML_FORBIDDEN_ECHO, ids=["DeleteAlarms", "DescribeAlarmHistory"])
def test_query_errors_are_well_formed_xml_whatever_they_echo(monitoring_server: ServerProcess, body: bytes) -> None:
    with httpx.Client(base_url=monitoring_server.url, trust_env=False, timeout=60) as client:
        answer = client.post("/", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= answer.status_code < 500
    assert shape_problem("query", "", answer) is None, answer.content[:300]


def test_clean_up_after_fuzzing(monitoring_server: ServerProcess) -> None:
    """Last in the module: what the fuzzer registered and created is deleted, and the server still answers."""
    clean_up(monitoring_server)
    with httpx.Client(base_url=monitoring_server.url, trust_env=False, timeout=60) as client:
        _still_answers(client)


def test_the_checks_want_each_protocols_error_shape() -> None:
    """The assertion itself: a 500, or a 4xx in another protocol's shape, fails; Logs' own 503 does not."""
    xml_error = (
        b'<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type>'
        b"<Code>InvalidAction</Code><Message>no</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    )

    def answer(request: httpx.Request) -> httpx.Response:
        kind = request.headers.get("x-case", "")
        if kind == "logs-503":
            return httpx.Response(503, json={"__type": "ServiceUnavailableException", "message": "retry"})
        if kind == "500":
            return httpx.Response(500, json={"__type": "InternalFailure", "message": "boom"})
        if kind == "xml":
            return httpx.Response(400, content=xml_error, headers={"Content-Type": "text/xml"})
        if kind == "cbor":
            body = cbor_bytes({"__type": "com.amazonaws.cloudwatch#InvalidParameterValueException", "message": "x"})
            return httpx.Response(400, content=body, headers={"smithy-protocol": "rpc-v2-cbor"})
        return httpx.Response(400, json={"__type": "SerializationException", "message": "x"})

    def case(service: str, protocol: str, kind: str) -> Case:
        return Case(service, "ListMetrics", protocol, "/", {"x-case": kind.encode()}, b"")

    with httpx.Client(transport=httpx.MockTransport(answer), base_url="http://127.0.0.1") as client:
        fuzz = Fuzzer(client)
        for good in [
            case("logs", "json", "logs-503"),
            case("cloudwatch", "query", "xml"),
            case("cloudwatch", "query|json", "json"),
            case("cloudwatch", "cbor", "cbor"),
            case("cloudwatch", "json", "json"),
        ]:
            fuzz.send(good)
        assert fuzz.failures == []
        for bad in [
            case("cloudwatch", "json", "logs-503"),  # CloudWatch has no 503 of its own
            case("logs", "json", "500"),
            case("cloudwatch", "query", "json"),  # JSON where the query protocol answers XML
            case("cloudwatch", "cbor", "json"),
            case("cloudwatch", "json", "xml"),
        ]:
            fuzz.send(bad)
    assert len(fuzz.failures) == 5, fuzz.failures
