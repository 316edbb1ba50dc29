"""boto3's `cloudwatch` client in each protocol botocore 1.44 has for it, against a real HTTP server.

botocore 1.44 picks awsJson1_0 for CloudWatch by default (it ranks `json` above `smithy-rpc-v2-cbor` in
PRIORITY_ORDERED_SUPPORTED_PROTOCOLS); the other two are forced through an sdk-extras model file. Each test
checks on the server that the client really spoke the protocol it was meant to.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.monitoring.cloudwatch_server import CloudWatchServer, cloudwatch_client

PROTOCOLS = {"json": None, "cbor": "smithy-rpc-v2-cbor", "query": "query"}  # server's kind -> forced protocol
DIMS = [{"Name": "EndpointName", "Value": "falcon"}, {"Name": "VariantName", "Value": "AllTraffic"}]


@pytest.fixture(params=sorted(PROTOCOLS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cw(cloudwatch: CloudWatchServer, kind: str, tmp_path: Path) -> Any:
    return cloudwatch_client(cloudwatch.url, tmp_path / "models", PROTOCOLS[kind])


def minute_ago(minutes: int) -> int:
    return int(time.time() // 60) * 60 - 60 * minutes


def spoke_only(server: CloudWatchServer, kind: str) -> None:
    assert server.kinds and set(server.kinds) == {kind}, server.kinds


def test_put_then_get_metric_statistics_gives_exact_numbers(cloudwatch: CloudWatchServer, cw: Any, kind: str) -> None:
    t0 = minute_ago(10)
    cw.put_metric_data(
        Namespace="Custom/Serving",
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": DIMS,
                "Timestamp": t0 + 1,
                "Value": 10.0,
                "Unit": "Milliseconds",
                "StorageResolution": 1,
            },
            {
                "MetricName": "Latency",
                "Dimensions": DIMS,
                "Timestamp": t0 + 12,
                "Values": [1.0, 2.0, 30.0],
                "Counts": [2.0, 1.0, 1.0],
                "Unit": "Milliseconds",
                "StorageResolution": 1,
            },
            {
                "MetricName": "Latency",
                "Dimensions": DIMS,
                "Timestamp": t0 + 70,
                "Unit": "Milliseconds",
                "StatisticValues": {"SampleCount": 4.0, "Sum": 20.0, "Minimum": 0.5, "Maximum": 9.5},
            },
        ],
    )
    stats = ["SampleCount", "Sum", "Minimum", "Maximum", "Average"]
    minutes = cw.get_metric_statistics(
        Namespace="Custom/Serving",
        MetricName="Latency",
        Dimensions=DIMS,
        StartTime=t0,
        EndTime=t0 + 120,
        Period=60,
        Statistics=stats,
    )
    assert minutes["Label"] == "Latency"
    got = sorted(minutes["Datapoints"], key=lambda p: p["Timestamp"])
    assert [int(p["Timestamp"].timestamp()) for p in got] == [t0, t0 + 60]
    assert {k: got[0][k] for k in stats} == {"SampleCount": 5, "Sum": 44, "Minimum": 1, "Maximum": 30, "Average": 8.8}
    assert {k: got[1][k] for k in stats} == {"SampleCount": 4, "Sum": 20, "Minimum": 0.5, "Maximum": 9.5, "Average": 5}
    assert {p["Unit"] for p in got} == {"Milliseconds"}
    tens = cw.get_metric_statistics(
        Namespace="Custom/Serving",
        MetricName="Latency",
        Dimensions=DIMS,
        StartTime=t0,
        EndTime=t0 + 60,
        Period=10,
        Statistics=["Sum"],
    )
    by_time = {int(p["Timestamp"].timestamp()): p["Sum"] for p in tens["Datapoints"]}
    assert by_time == {t0: 10, t0 + 10: 34}
    # exact dimensions: the endpoint alone is another metric, with no data
    endpoint_only = cw.get_metric_statistics(
        Namespace="Custom/Serving",
        MetricName="Latency",
        Dimensions=DIMS[:1],
        StartTime=t0,
        EndTime=t0 + 120,
        Period=60,
        Statistics=["Sum"],
    )
    assert endpoint_only["Datapoints"] == []
    spoke_only(cloudwatch, kind)


def test_get_metric_data_with_math_labels_scan_order_and_pages(
    cloudwatch: CloudWatchServer, cw: Any, kind: str
) -> None:
    t0 = minute_ago(20)
    data = [
        {"MetricName": name, "Dimensions": DIMS, "Timestamp": t0 + 60 * i, "Value": float(value * (i + 1))}
        for i in range(5)
        for name, value in (("Invocations", 10), ("Errors", 1))
    ]
    cw.put_metric_data(Namespace="Custom/Serving", MetricData=data)

    def stat(name: str) -> dict[str, Any]:
        return {
            "Metric": {"Namespace": "Custom/Serving", "MetricName": name, "Dimensions": DIMS},
            "Period": 60,
            "Stat": "Sum",
        }

    queries = [
        {"Id": "inv", "MetricStat": stat("Invocations")},
        {"Id": "err", "MetricStat": stat("Errors"), "ReturnData": False},
        {"Id": "rate", "Expression": "100 * err / inv", "Label": "Error rate"},
        {"Id": "total", "Expression": "SUM([inv, err])"},
        {"Id": "mean", "Expression": "AVG(inv)"},
    ]
    answer = cw.get_metric_data(MetricDataQueries=queries, StartTime=t0, EndTime=t0 + 300, ScanBy="TimestampAscending")
    results = {r["Id"]: r for r in answer["MetricDataResults"]}
    assert list(results) == ["inv", "rate", "total", "mean"]
    stamps = [t0 + 60 * i for i in range(5)]
    assert [int(t.timestamp()) for t in results["inv"]["Timestamps"]] == stamps
    assert results["inv"]["Values"] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert results["inv"]["Label"] == "Invocations"
    assert results["rate"]["Label"] == "Error rate"
    assert results["rate"]["Values"] == pytest.approx([10.0] * 5)
    assert results["total"]["Values"] == [11.0, 22.0, 33.0, 44.0, 55.0]
    assert results["mean"]["Values"] == [30.0] * 5  # a scalar, given at every timestamp
    assert all(r["StatusCode"] == "Complete" for r in results.values())
    assert "NextToken" not in answer

    descending = cw.get_metric_data(MetricDataQueries=queries[:1], StartTime=t0, EndTime=t0 + 300)
    assert descending["MetricDataResults"][0]["Values"] == [50.0, 40.0, 30.0, 20.0, 10.0]

    pages, token = [], None
    while True:
        extra = {"NextToken": token} if token else {}
        page = cw.get_metric_data(
            MetricDataQueries=queries[:3],
            StartTime=t0,
            EndTime=t0 + 300,
            MaxDatapoints=3,
            ScanBy="TimestampAscending",
            **extra,
        )
        pages.append(page)
        token = page.get("NextToken")
        if token is None:
            break
    assert len(pages) == 4  # 10 values (inv and rate), 3 a page
    inv = [v for p in pages for r in p["MetricDataResults"] if r["Id"] == "inv" for v in r["Values"]]
    rate = [v for p in pages for r in p["MetricDataResults"] if r["Id"] == "rate" for v in r["Values"]]
    assert inv == [10.0, 20.0, 30.0, 40.0, 50.0] and rate == pytest.approx([10.0] * 5)
    assert pages[0]["MetricDataResults"][0]["StatusCode"] == "PartialData"
    spoke_only(cloudwatch, kind)


def test_list_metrics_filters_and_pages(cloudwatch: CloudWatchServer, cw: Any, kind: str) -> None:
    now = minute_ago(1)
    data = [
        {
            "MetricName": "Queue",
            "Dimensions": [{"Name": "Worker", "Value": f"w{i:03d}"}],
            "Timestamp": now,
            "Value": 1.0,
        }
        for i in range(520)
    ]
    cw.put_metric_data(Namespace="Custom/Fleet", MetricData=data)  # > 10 KiB: botocore gzips it
    cw.put_metric_data(Namespace="Custom/Other", MetricData=[{"MetricName": "Depth", "Value": 2.0, "Dimensions": DIMS}])
    first = cw.list_metrics(Namespace="Custom/Fleet")
    assert len(first["Metrics"]) == 500 and "NextToken" in first
    second = cw.list_metrics(Namespace="Custom/Fleet", NextToken=first["NextToken"])
    assert len(second["Metrics"]) == 20 and "NextToken" not in second
    workers = [m["Dimensions"][0]["Value"] for m in first["Metrics"] + second["Metrics"]]
    assert workers == [f"w{i:03d}" for i in range(520)]
    filtered = cw.list_metrics(Dimensions=[{"Name": "VariantName"}])
    assert filtered["Metrics"] == [{"Namespace": "Custom/Other", "MetricName": "Depth", "Dimensions": DIMS}]
    assert cw.list_metrics(Dimensions=[{"Name": "EndpointName", "Value": "other"}])["Metrics"] == []
    linked = cw.list_metrics(Namespace="Custom/Other", IncludeLinkedAccounts=True, RecentlyActive="PT3H")
    assert linked["OwningAccounts"] == ["123456789012"]
    paginated = [
        m for page in cw.get_paginator("list_metrics").paginate(Namespace="Custom/Fleet") for m in page["Metrics"]
    ]
    assert len(paginated) == 520
    gzipped = [c for c in cloudwatch.calls if (b"content-encoding", b"gzip") in c.raw_headers]
    assert [c.operation for c in gzipped] == ["PutMetricData"]
    spoke_only(cloudwatch, kind)


def code_of(call: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_errors_carry_cloudwatchs_codes(cloudwatch: CloudWatchServer, kind: str, tmp_path: Path) -> None:
    cw = cloudwatch_client(cloudwatch.url, tmp_path / "models", PROTOCOLS[kind])
    now = minute_ago(0)
    base = {"Namespace": "Custom", "MetricName": "M", "StartTime": now - 600, "EndTime": now, "Statistics": ["Sum"]}
    code, message, status = code_of(lambda: cw.get_metric_statistics(**base, Period=61))
    assert (code, status) == ("InvalidParameterValue", 400) and "multiple of 60" in message
    code, message, _ = code_of(lambda: cw.get_metric_statistics(**base, Period=5))
    assert code == "InvalidParameterValue" and "10-second buckets" in message
    code, message, _ = code_of(
        lambda: cw.get_metric_statistics(**{**base, "StartTime": now, "EndTime": now - 60}, Period=60)
    )
    assert (code, message) == (
        "InvalidParameterValue",
        "The parameter StartTime must be less than the parameter EndTime.",
    )
    code, message, _ = code_of(lambda: cw.get_metric_statistics(**{**base, "StartTime": now - 86400 * 2}, Period=60))
    assert code == "InvalidParameterCombination" and "exceeds the limit of 1,440" in message
    no_stats = {k: v for k, v in base.items() if k != "Statistics"}
    code, message, _ = code_of(lambda: cw.get_metric_statistics(**no_stats, ExtendedStatistics=["p99"], Period=60))
    assert code == "InvalidParameterValue" and "percentile" in message
    code, _, _ = code_of(
        lambda: cw.put_metric_data(
            Namespace="Custom", MetricData=[{"MetricName": "M", "Value": 1.0, "Unit": "Parsecs"}]
        )
    )
    assert code == "ValidationError"
    code, message, _ = code_of(
        lambda: cw.put_metric_data(Namespace="Custom", MetricData=[{"MetricName": "M", "Value": 1.0, "Values": [1.0]}])
    )
    assert code == "InvalidParameterCombination" and "mutually exclusive" in message
    code, _, _ = code_of(
        lambda: cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=[{"MetricName": "M", "Value": 1.0}])
    )
    assert code == "InvalidParameterValue"
    code, _, _ = code_of(lambda: cw.list_metrics(NextToken="bm90IGEgdG9rZW4="))
    assert code == "InvalidNextToken"
    # botocore checks required members itself; with that off, the server's own check answers
    raw = cloudwatch_client(cloudwatch.url, tmp_path / "models", PROTOCOLS[kind], validate=False)
    code, message, _ = code_of(
        lambda: raw.get_metric_statistics(
            MetricName="M", StartTime=now - 60, EndTime=now, Period=60, Statistics=["Sum"]
        )
    )
    assert (code, message) == ("MissingParameter", "The parameter Namespace is required.")
    assert set(cloudwatch.kinds) == {kind}
    assert cw.list_metrics()["Metrics"] == []  # nothing was stored by the refused calls


def test_data_survive_reopening_the_store(tmp_path: Path, kind: str) -> None:
    t0 = minute_ago(5)
    first = CloudWatchServer(tmp_path / "metrics.db").start()
    try:
        cw = cloudwatch_client(first.url, tmp_path / "models", PROTOCOLS[kind])
        cw.put_metric_data(Namespace="Custom", MetricData=[{"MetricName": "M", "Value": 7.0, "Timestamp": t0}])
    finally:
        first.stop()
    again = CloudWatchServer(tmp_path / "metrics.db").start()
    try:
        cw = cloudwatch_client(again.url, tmp_path / "models", PROTOCOLS[kind])
        answer = cw.get_metric_statistics(
            Namespace="Custom",
            MetricName="M",
            StartTime=t0,
            EndTime=t0 + 60,
            Period=60,
            Statistics=["Sum", "SampleCount"],
        )
        assert [(p["Sum"], p["SampleCount"]) for p in answer["Datapoints"]] == [(7.0, 1.0)]
        assert again.kinds == [kind]
    finally:
        again.stop()


def test_the_authorize_hook_sees_the_action_and_can_refuse(tmp_path: Path, kind: str) -> None:
    server = CloudWatchServer(tmp_path / "metrics.db", deny=frozenset({"cloudwatch:PutMetricData"})).start()
    try:
        cw = cloudwatch_client(server.url, tmp_path / "models", PROTOCOLS[kind])
        code, message, _ = code_of(
            lambda: cw.put_metric_data(Namespace="C", MetricData=[{"MetricName": "M", "Value": 1.0}])
        )
        assert code == "AccessDeniedException" and "cloudwatch:PutMetricData" in message
        assert cw.list_metrics()["Metrics"] == []
        assert [c.action for c in server.calls] == ["cloudwatch:PutMetricData", "cloudwatch:ListMetrics"]
        assert server.calls[0].body and any(k.lower() == b"authorization" for k, _ in server.calls[0].raw_headers)
    finally:
        server.stop()
