"""PutMetricData's checks and GetMetricData's paging, on a real store (no HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ApiError
from modelhost.monitoring.context import CloudWatchContext
from modelhost.monitoring.ingest import put_metric_data
from modelhost.monitoring.metric_data import get_metric_data
from modelhost.monitoring.metric_store import SqliteMetricStore

NOW = 1_700_000_040.0


@pytest.fixture
def ctx(tmp_path: Path) -> CloudWatchContext:
    return CloudWatchContext(SqliteMetricStore(tmp_path / "m.db"), "123456789012", "us-east-1", NOW)


def refused(ctx: CloudWatchContext, datum: dict[str, Any], namespace: str = "C") -> tuple[str, str]:
    with pytest.raises(ApiError) as caught:
        put_metric_data(ctx, {"Namespace": namespace, "MetricData": [{"MetricName": "M", **datum}]})
    return caught.value.code, caught.value.message


@pytest.mark.parametrize(
    ("datum", "code", "words"),
    [
        ({}, "MissingParameter", "is required"),
        (
            {"Value": 1.0, "StatisticValues": {"SampleCount": 1.0, "Sum": 1.0, "Minimum": 1.0, "Maximum": 1.0}},
            "InvalidParameterCombination",
            "mutually exclusive",
        ),
        ({"Value": float("inf")}, "InvalidParameterValue", "MetricData.member.1.Value"),
        ({"Value": 2.0**400}, "InvalidParameterValue", "is invalid"),
        ({"Values": [1.0, 2.0], "Counts": [1.0]}, "InvalidParameterValue", "same size"),
        ({"Values": [1.0] * 151}, "InvalidParameterValue", "150"),
        (
            {"StatisticValues": {"SampleCount": 0.0, "Sum": 1.0, "Minimum": 1.0, "Maximum": 1.0}},
            "InvalidParameterValue",
            "greater than 0",
        ),
        (
            {"StatisticValues": {"SampleCount": 1.0, "Sum": 1.0, "Minimum": 2.0, "Maximum": 1.0}},
            "InvalidParameterValue",
            "Minimum",
        ),
        ({"Value": 1.0, "Timestamp": NOW - 15 * 86400}, "InvalidParameterValue", "two weeks"),
        ({"Value": 1.0, "Timestamp": NOW + 3 * 3600}, "InvalidParameterValue", "two hours"),
        ({"Value": 1.0, "StorageResolution": 30}, "InvalidParameterValue", "StorageResolution"),
        (
            {"Value": 1.0, "Dimensions": [{"Name": "a", "Value": "x"}, {"Name": "a", "Value": "y"}]},
            "InvalidParameterValue",
            "twice",
        ),
        ({"Value": 1.0, "Dimensions": [{"Name": "a", "Value": "bad\x01"}]}, "InvalidParameterValue", "control"),
        ({"Value": 1.0, "Dimensions": [{"Name": "a", "Value": "é"}]}, "InvalidParameterValue", "ASCII"),
    ],
)
def test_put_metric_data_refusals(ctx: CloudWatchContext, datum: dict[str, Any], code: str, words: str) -> None:
    got_code, message = refused(ctx, datum)
    assert got_code == code and words in message
    assert ctx.store.list_metrics(NOW) == []  # a refused call stores nothing, not even its valid metrics


def test_aws_namespaces_are_reserved(ctx: CloudWatchContext) -> None:
    assert refused(ctx, {"Value": 1.0}, namespace="AWS/SageMaker")[0] == "InvalidParameterValue"


def test_get_metric_data_pages_by_max_datapoints(ctx: CloudWatchContext) -> None:
    data = [{"MetricName": "M", "Value": float(i), "Timestamp": NOW - 600 + 60 * i} for i in range(5)]
    put_metric_data(ctx, {"Namespace": "C", "MetricData": data})
    query = {"Id": "m", "MetricStat": {"Metric": {"Namespace": "C", "MetricName": "M"}, "Period": 60, "Stat": "Sum"}}
    params: dict[str, Any] = {
        "MetricDataQueries": [query],
        "StartTime": NOW - 600,
        "EndTime": NOW,
        "MaxDatapoints": 2,
        "ScanBy": "TimestampAscending",
    }
    values: list[float] = []
    while True:
        page = get_metric_data(ctx, params)
        values += page["MetricDataResults"][0]["Values"]
        if "NextToken" not in page:
            break
        params = {**params, "NextToken": page["NextToken"]}
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ApiError) as other_query:
        get_metric_data(ctx, {**params, "NextToken": page.get("NextToken") or _token(ctx), "MaxDatapoints": 3})
    assert other_query.value.code == "InvalidNextToken"


def _token(ctx: CloudWatchContext) -> str:
    from modelhost.monitoring.paging import encode_token

    return encode_token(2, {"MetricDataQueries": []})


def test_get_metric_data_refuses_cycles_and_bad_ids(ctx: CloudWatchContext) -> None:
    base = {"StartTime": NOW - 600, "EndTime": NOW}
    for queries, words in (
        ([{"Id": "a", "Expression": "b + 1"}, {"Id": "b", "Expression": "a * 2"}], "refers back"),
        ([{"Id": "Bad", "Expression": "1"}], "lowercase"),
        ([{"Id": "a", "Expression": "nope + 1"}], "Unrecognized"),
        ([{"Id": "a"}], "Exactly one"),
        ([{"Id": "a", "Expression": "1", "ReturnData": False}], "ReturnData"),
    ):
        with pytest.raises(ApiError, match=words):
            get_metric_data(ctx, {**base, "MetricDataQueries": queries})
