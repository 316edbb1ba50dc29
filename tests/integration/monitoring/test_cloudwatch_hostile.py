"""Hostile bodies against the CloudWatch edge over real HTTP: each is a 4xx in its protocol, never a 5xx, and
the server answers normally afterwards."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import cbor2
import httpx
import pytest

from tests.integration.monitoring.cloudwatch_server import CloudWatchServer, cloudwatch_client

CBOR_PATH = "/service/GraniteServiceVersion20100801/operation/PutMetricData"
CBOR_HEADERS = {"smithy-protocol": "rpc-v2-cbor", "content-type": "application/cbor"}
JSON_HEADERS = {
    "x-amz-target": "GraniteServiceVersion20100801.PutMetricData",
    "content-type": "application/x-amz-json-1.0",
}
FORM = {"content-type": "application/x-www-form-urlencoded"}

MB = 1_000_000
CASES = {
    "cbor deep nesting (1 MB)": (CBOR_PATH, CBOR_HEADERS, b"\x81" * (MB - 1) + b"\x00", 400, "SerializationException"),
    "cbor declares 2^60 items": (
        CBOR_PATH,
        CBOR_HEADERS,
        b"\x9b" + (2**60).to_bytes(8, "big") + b"\x00" * 100,
        400,
        "SerializationException",
    ),
    "cbor 1 MB of tags": (CBOR_PATH, CBOR_HEADERS, b"\xd8\x23" * (MB // 2) + b"\x60", 400, "SerializationException"),
    "cbor shared references": (
        CBOR_PATH,
        CBOR_HEADERS,
        b"\xd8\x1c\x82\xd8\x1d\x00\xd8\x1d\x00",
        400,
        "SerializationException",
    ),
    "cbor 250k items": (
        CBOR_PATH,
        CBOR_HEADERS,
        cbor2.dumps({"Namespace": "C", "MetricData": [0] * 250_000}),
        400,
        "SerializationException",
    ),
    "cbor trailing bytes": (
        CBOR_PATH,
        CBOR_HEADERS,
        cbor2.dumps({"Namespace": "C"}) + b"\x00",
        400,
        "SerializationException",
    ),
    "cbor without smithy-protocol": (
        CBOR_PATH,
        {"content-type": "application/cbor"},
        cbor2.dumps({}),
        400,
        "SerializationException",
    ),
    "json deep nesting": ("/", JSON_HEADERS, b"[" * 100_000 + b"]" * 100_000, 400, "SerializationException"),
    "json not json": ("/", JSON_HEADERS, b"{nope", 400, "SerializationException"),
    "json wrong types": (
        "/",
        JSON_HEADERS,
        json.dumps({"Namespace": 5, "MetricData": "x"}).encode(),
        400,
        "ValidationError",
    ),
    "json NaN value": (
        "/",
        JSON_HEADERS,
        b'{"Namespace":"C","MetricData":[{"MetricName":"M","Value":NaN}]}',
        400,
        "SerializationException",
    ),
    "gzip bomb": (
        "/",
        {**JSON_HEADERS, "content-encoding": "gzip"},
        gzip.compress(b" " * 50 * MB),
        413,
        "RequestEntityTooLarge",
    ),
    "over 1 MiB": ("/", JSON_HEADERS, b" " * (2 * MB), 413, "RequestEntityTooLarge"),
    "unknown operation": (
        "/",
        {**JSON_HEADERS, "x-amz-target": "GraniteServiceVersion20100801.PutDashboard"},
        b"{}",
        400,
        "UnknownOperationException",
    ),
    "query bad index": (
        "/",
        FORM,
        b"Action=PutMetricData&Version=2010-08-01&Namespace=C&MetricData.member.x.MetricName=M",
        400,
        "InvalidParameterValue",
    ),
    "query bad number": (
        "/",
        FORM,
        b"Action=PutMetricData&Version=2010-08-01&Namespace=C&MetricData.member.1.MetricName"
        b"=M&MetricData.member.1.Value=lots",
        400,
        "InvalidParameterValue",
    ),
    "query NaN": (
        "/",
        FORM,
        b"Action=PutMetricData&Version=2010-08-01&Namespace=C&MetricData.member.1.MetricName=M"
        b"&MetricData.member.1.Value=NaN",
        400,
        "InvalidParameterValue",
    ),
    "query unknown action": ("/", FORM, b"Action=DeleteEverything&Version=2010-08-01", 400, "InvalidAction"),
    "query clashing keys": (
        "/",
        FORM,
        b"Action=ListMetrics&Version=2010-08-01&Namespace=a&Namespace.x=b",
        400,
        "MalformedQueryString",
    ),
}


def error_code(response: httpx.Response, path: str) -> str:
    """The code botocore would read: x-amzn-query-error for CBOR and JSON, <Code> of the query ErrorResponse."""
    if path.startswith("/service/"):
        assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
        assert "#" in cbor2.loads(response.content)["__type"]
    if "x-amzn-query-error" in response.headers:
        return response.headers["x-amzn-query-error"].split(";")[0]
    return response.text.split("<Code>")[1].split("</Code>")[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_bodies_are_client_errors(cloudwatch: CloudWatchServer, case: str, tmp_path: Path) -> None:
    path, headers, body, status, code = CASES[case]
    response = httpx.post(cloudwatch.url + path, content=body, headers=headers, timeout=30, trust_env=False)
    assert response.status_code == status, response.text[:300]
    assert error_code(response, path) == code
    cw = cloudwatch_client(cloudwatch.url, tmp_path / "models")
    cw.put_metric_data(Namespace="After", MetricData=[{"MetricName": "Ok", "Value": 1.0}])
    assert [m["MetricName"] for m in cw.list_metrics(Namespace="After")["Metrics"]] == ["Ok"]
