"""Metric alarms through boto3's `cloudwatch` client in each of its protocols, against a real HTTP server:
put an alarm, breach it with PutMetricData, evaluate, read ALARM and its reason with DescribeAlarms, the
history, SetAlarmState, actions on/off, paging, DeleteAlarms, errors, and persistence across a reopen."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.monitoring.alarm_evaluator import AlarmEvaluator
from tests.integration.monitoring.cloudwatch_server import CloudWatchServer, cloudwatch_client

PROTOCOLS = {"json": None, "cbor": "smithy-rpc-v2-cbor", "query": "query"}
DIMS = [{"Name": "EndpointName", "Value": "falcon"}, {"Name": "VariantName", "Value": "AllTraffic"}]
POLICY = ("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0d5e:resource/sagemaker/endpoint/falcon/"
          "variant/AllTraffic:policyName/step-out")  # fmt: skip


@pytest.fixture(params=sorted(PROTOCOLS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cw(cloudwatch: CloudWatchServer, kind: str, tmp_path: Path) -> Any:
    return cloudwatch_client(cloudwatch.url, tmp_path / "models", PROTOCOLS[kind])


def this_minute() -> int:
    return int(time.time() // 60) * 60


def put_alarm(cw: Any, name: str = "falcon-busy", **over: Any) -> None:
    args: dict[str, Any] = {
        "AlarmName": name, "Namespace": "Custom/Serving", "MetricName": "QueueDepth", "Dimensions": DIMS,
        "Statistic": "Average", "Period": 60, "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 4.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
        "AlarmActions": [POLICY], "AlarmDescription": "queue too deep", "Tags": [{"Key": "team", "Value": "ml"}],
    }  # fmt: skip
    args.update(over)
    cw.put_metric_alarm(**args)


def breach(cw: Any, m0: int) -> None:
    cw.put_metric_data(Namespace="Custom/Serving", MetricData=[
        {"MetricName": "QueueDepth", "Dimensions": DIMS, "Timestamp": m0 - 120 + 5, "Value": 5.0},
        {"MetricName": "QueueDepth", "Dimensions": DIMS, "Timestamp": m0 - 60 + 5, "Value": 6.0},
    ])  # fmt: skip


def test_alarm_fires_and_is_described_with_its_reason(cloudwatch: CloudWatchServer, cw: Any, kind: str) -> None:
    put_alarm(cw)
    [fresh] = cw.describe_alarms(AlarmNames=["falcon-busy"])["MetricAlarms"]
    assert fresh["StateValue"] == "INSUFFICIENT_DATA" and fresh["StateReason"] == "Unchecked: Initial alarm creation"
    assert fresh["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:falcon-busy"
    assert fresh["Dimensions"] == DIMS and fresh["AlarmActions"] == [POLICY] and fresh["DatapointsToAlarm"] == 2
    m0 = this_minute()
    breach(cw, m0)
    evaluator = AlarmEvaluator(cloudwatch.store.alarms, cloudwatch.store)
    [transition] = evaluator.evaluate(m0 + 15)
    assert (transition.new_state, transition.actions) == ("ALARM", (POLICY,))
    [alarm] = cw.describe_alarms(StateValue="ALARM")["MetricAlarms"]
    assert alarm["AlarmName"] == "falcon-busy"
    assert alarm["StateReason"].startswith("Threshold Crossed: 2 out of the last 2 datapoints [6.0 (")
    assert alarm["StateReason"].endswith(
        "were greater than or equal to the threshold (4.0) (minimum 2 datapoints for INSUFFICIENT_DATA -> ALARM "
        "transition)."
    )
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [5.0, 6.0]
    assert alarm["StateUpdatedTimestamp"].timestamp() == pytest.approx(m0 + 15)
    assert alarm["AlarmConfigurationUpdatedTimestamp"].timestamp() <= time.time() + 1
    [state] = evaluator.alarm_states()
    assert (state.state, state.last_value, state.breach, state.scaling_policy_arns) == ("ALARM", 6.0, 2.0, (POLICY,))
    history = cw.describe_alarm_history(AlarmName="falcon-busy", HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in history] == ["Alarm updated from INSUFFICIENT_DATA to ALARM"]
    assert cw.describe_alarms_for_metric(Namespace="Custom/Serving", MetricName="QueueDepth", Dimensions=DIMS,
                                         Statistic="Average")["MetricAlarms"][0]["StateValue"] == "ALARM"  # fmt: skip
    assert cw.describe_alarms(StateValue="OK")["MetricAlarms"] == []
    cw.delete_alarms(AlarmNames=["falcon-busy"])
    assert cw.describe_alarms()["MetricAlarms"] == []
    assert set(cloudwatch.kinds) == {kind}


def test_set_alarm_state_actions_and_filters(cloudwatch: CloudWatchServer, cw: Any) -> None:
    put_alarm(cw, "a-one")
    put_alarm(cw, "a-two", AlarmActions=[], OKActions=["arn:aws:sns:us-east-1:123456789012:ops"])
    put_alarm(cw, "b-three")
    data = json.dumps({"version": "1.0", "recentDatapoints": [9.0]})
    cw.set_alarm_state(AlarmName="a-one", StateValue="ALARM", StateReason="testing", StateReasonData=data)
    evaluator = AlarmEvaluator(cloudwatch.store.alarms, cloudwatch.store)
    states = {s.name: s for s in evaluator.alarm_states()}
    assert (states["a-one"].state, states["a-one"].last_value) == ("ALARM", 9.0)
    cw.disable_alarm_actions(AlarmNames=["a-one", "unknown"])
    assert cw.describe_alarms(AlarmNames=["a-one"])["MetricAlarms"][0]["ActionsEnabled"] is False
    assert {s.name: s for s in evaluator.alarm_states()}["a-one"].scaling_policy_arns == ()
    cw.enable_alarm_actions(AlarmNames=["a-one"])
    assert [a["AlarmName"] for a in cw.describe_alarms(AlarmNamePrefix="a-")["MetricAlarms"]] == ["a-one", "a-two"]
    assert [a["AlarmName"] for a in cw.describe_alarms(ActionPrefix="arn:aws:sns:")["MetricAlarms"]] == ["a-two"]
    pages = cw.get_paginator("describe_alarms").paginate(PaginationConfig={"PageSize": 2})
    assert [[a["AlarmName"] for a in p["MetricAlarms"]] for p in pages] == [["a-one", "a-two"], ["b-three"]]
    # the evaluator puts a-one back to its actual state (no data: INSUFFICIENT_DATA), as CloudWatch does
    [back] = evaluator.evaluate(time.time())
    assert (back.name, back.old_state, back.new_state) == ("a-one", "ALARM", "INSUFFICIENT_DATA")


def test_alarm_errors(cw: Any) -> None:
    put_alarm(cw)
    cases = [
        (lambda: put_alarm(cw, Period=45), "InvalidParameterValue"),
        (lambda: put_alarm(cw, DatapointsToAlarm=3), "ValidationError"),
        (lambda: cw.put_metric_alarm(AlarmName="x", Namespace="N", MetricName="M", Period=60, EvaluationPeriods=1,
                                     Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
                                     ExtendedStatistic="p99"), "InvalidParameterValue"),  # fmt: skip
        (lambda: cw.delete_alarms(AlarmNames=["falcon-busy", "nope"]), "ResourceNotFound"),
        (lambda: cw.set_alarm_state(AlarmName="nope", StateValue="OK", StateReason="r"), "ResourceNotFound"),
        (lambda: cw.set_alarm_state(AlarmName="falcon-busy", StateValue="OK", StateReason="r",
                                    StateReasonData="{not json"), "InvalidFormat"),  # fmt: skip
        (lambda: cw.describe_alarms(AlarmNames=["a"], AlarmNamePrefix="a"), "InvalidParameterCombination"),
        (lambda: cw.describe_alarms(NextToken="mh1.garbage"), "InvalidNextToken"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == code
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    # DeleteAlarms deleted the alarm that existed before naming the unknown one
    assert cw.describe_alarms()["MetricAlarms"] == []


def test_alarms_persist_across_a_reopened_store(tmp_path: Path) -> None:
    first = CloudWatchServer(tmp_path / "metrics.db").start()
    try:
        cw = cloudwatch_client(first.url, tmp_path / "models")
        put_alarm(cw)
        cw.set_alarm_state(AlarmName="falcon-busy", StateValue="ALARM", StateReason="by hand")
    finally:
        first.stop()
    second = CloudWatchServer(tmp_path / "metrics.db").start()
    try:
        cw = cloudwatch_client(second.url, tmp_path / "models")
        [alarm] = cw.describe_alarms()["MetricAlarms"]
        assert (alarm["StateValue"], alarm["StateReason"], alarm["Threshold"]) == ("ALARM", "by hand", 4.0)
        kinds = [h["HistoryItemType"] for h in cw.describe_alarm_history(ScanBy="TimestampAscending")
                 ["AlarmHistoryItems"]]  # fmt: skip
        assert kinds == ["ConfigurationUpdate", "StateUpdate"]
    finally:
        second.stop()
