"""The CloudWatch wire codecs: protocol detection, CBOR limits, query trees, XML, gzip, shape checks."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import cbor2
import pytest

from modelhost.api.validation import operation_model
from modelhost.errors import ApiError
from modelhost.monitoring import cbor_codec, shape_codec, wire
from modelhost.monitoring.input_check import checked, query_name

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "kind"),
    [
        (
            "POST",
            "/service/GraniteServiceVersion20100801/operation/ListMetrics",
            {"smithy-protocol": "rpc-v2-cbor"},
            b"\xa0",
            "cbor",
        ),
        ("POST", "/", {"X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics"}, b"{}", "json"),
        ("POST", "/", {"x-amz-target": "SageMaker.ListModels"}, b"{}", None),
        ("POST", "/", FORM, b"Action=ListMetrics&Version=2010-08-01", "query"),
        ("POST", "/", FORM, b"Action=ListMetrics", "query"),
        ("POST", "/", FORM, b"Action=DescribeInstances&Version=2016-11-15", None),
        ("POST", "/", FORM, b"Action=Something", None),
        (
            "POST",
            "/",
            {**FORM, "content-encoding": "gzip"},
            gzip.compress(b"Action=PutMetricData&Version=2010-08-01"),
            "query",
        ),
        ("GET", "/", FORM, b"Action=ListMetrics&Version=2010-08-01", None),
        ("POST", "/endpoints/x/invocations", {}, b"", None),
    ],
)
def test_request_kind(method: str, path: str, headers: dict[str, str], body: bytes, kind: str | None) -> None:
    assert wire.cloudwatch_request_kind(method, path, headers, body) == kind


def test_cbor_decodes_timestamps_and_refuses_other_tags() -> None:
    value = cbor_codec.decode(cbor2.dumps({"StartTime": cbor2.CBORTag(1, 1700000000.5), "N": [1, 2.5, None]}))
    assert value["StartTime"] == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    for bad in (
        b"\xd8\x23" + cbor2.dumps("(a+)+$"),
        b"\xd9\x12\x34\x00",
        b"\xc2\x41\x01",
        b"\xf0",
        b"\xa1\x01\x02",
        b"\x81" * 40 + b"\x00",
        b"\x01\x02",
        b"",
        b"\xa2\x61a\x01\x61a\x02",
    ):
        with pytest.raises(cbor_codec.NotCbor):
            cbor_codec.decode(bad)


def test_cbor_timestamps_encode_as_tag_one() -> None:
    assert cbor_codec.timestamp(60.0) == cbor2.CBORTag(1, 60)
    assert cbor_codec.timestamp(60.25) == cbor2.CBORTag(1, 60.25)


def test_query_tree_and_shapes() -> None:
    pairs = [
        ("Namespace", "C"),
        ("MetricData.member.2.MetricName", "B"),
        ("MetricData.member.1.MetricName", "A"),
        ("MetricData.member.1.Value", "1.5"),
        ("MetricData.member.1.StorageResolution", "1"),
        ("MetricData.member.1.Timestamp", "2024-01-01T00:00:10.500Z"),
        ("MetricData.member.1.Dimensions.member.1.Name", "E"),
        ("MetricData.member.1.Dimensions.member.1.Value", "e"),
        ("MetricData.member.2.Values", ""),
    ]
    shape = operation_model("cloudwatch", "PutMetricData").input_shape
    params = shape_codec.from_query(shape, shape_codec.query_tree(pairs))
    first, second = params["MetricData"]
    assert first == {
        "MetricName": "A",
        "Value": 1.5,
        "StorageResolution": 1,
        "Dimensions": [{"Name": "E", "Value": "e"}],
        "Timestamp": datetime(2024, 1, 1, 0, 0, 10, 500000, tzinfo=UTC).timestamp(),
    }
    assert second == {"MetricName": "B", "Values": []}
    with pytest.raises(ApiError, match="clashes"):
        shape_codec.query_tree([("A", "1"), ("A.B", "2")])
    with pytest.raises(ApiError, match="not a valid integer"):
        shape_codec.from_query(shape, shape_codec.query_tree([("MetricData.member.1.StorageResolution", "x")]))


def test_timestamps_in_every_form() -> None:
    assert shape_codec.epoch_seconds(1700000000, "T") == 1700000000.0
    assert shape_codec.epoch_seconds("2023-11-14T22:13:20Z", "T") == 1700000000.0
    assert shape_codec.epoch_seconds("1700000000.5", "T") == 1700000000.5
    for bad in ("yesterday", float("nan"), True, 1e300):
        with pytest.raises(ApiError, match="not a valid timestamp"):
            shape_codec.epoch_seconds(bad, "T")


def test_xml_of_a_response() -> None:
    shape = operation_model("cloudwatch", "GetMetricStatistics").output_shape
    xml = shape_codec.to_xml(
        shape,
        {"Label": "a<b", "Datapoints": [{"Timestamp": 60.0, "Sum": 2.0, "Unit": "Count"}]},
        "GetMetricStatisticsResult",
    )
    assert xml == (
        "<GetMetricStatisticsResult><Label>a&lt;b</Label><Datapoints><member>"
        "<Timestamp>1970-01-01T00:01:00Z</Timestamp><Sum>2.0</Sum><Unit>Count</Unit></member></Datapoints>"
        "</GetMetricStatisticsResult>"
    )


def test_gzip_bodies_are_bounded() -> None:
    assert wire.decoded_body(gzip.compress(b"abc"), "gzip") == b"abc"
    with pytest.raises(ApiError) as bomb:
        wire.decoded_body(gzip.compress(b"\0" * (wire.MAX_DECODED_BYTES + 10)), "gzip")
    assert bomb.value.status == 413
    for bad, encoding in ((b"not gzip", "gzip"), (gzip.compress(b"abc")[:-8], "gzip"), (b"x", "br")):
        with pytest.raises(ApiError):
            wire.decoded_body(bad, encoding)


def test_shape_checks_use_cloudwatch_codes() -> None:
    model = operation_model("cloudwatch", "GetMetricStatistics")
    with pytest.raises(ApiError) as missing:
        checked(model, {"MetricName": "M", "StartTime": 0.0, "EndTime": 1.0, "Period": 60})
    assert (missing.value.code, missing.value.message) == ("MissingParameter", "The parameter Namespace is required.")
    with pytest.raises(ApiError) as invalid:
        checked(model, {"Namespace": "N", "MetricName": "M", "StartTime": 0.0, "EndTime": 1.0, "Period": 0})
    assert invalid.value.code == "ValidationError" and "at 'period'" in invalid.value.message
    assert checked(
        model, {"Namespace": "N", "MetricName": "M", "StartTime": 0.0, "EndTime": 1.0, "Period": 60, "Unit": None}
    ) == {"Namespace": "N", "MetricName": "M", "StartTime": 0.0, "EndTime": 1.0, "Period": 60}
    assert query_name("metricData.3.member.dimensions.1.member.name") == "MetricData.member.3.Dimensions.member.1.Name"


def test_errors_in_each_protocol() -> None:
    error = ApiError("bad", code="InvalidParameterValue", status=400)
    query = wire.failure("query", error, "rid")
    assert b"<Code>InvalidParameterValue</Code>" in query.body and b"<Type>Sender</Type>" in query.body
    as_json = wire.failure("json", error, "rid")
    assert as_json.headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"
    assert b"com.amazonaws.cloudwatch#InvalidParameterValueException" in as_json.body
    as_cbor = wire.failure("cbor", error, "rid")
    assert cbor2.loads(as_cbor.body)["__type"] == "com.amazonaws.cloudwatch#InvalidParameterValueException"
    assert as_cbor.headers["smithy-protocol"] == "rpc-v2-cbor"
