"""Alarms beside the metrics: the store (create, update keeps state and tags, delete keeps history, reopen),
PutMetricAlarm's checks, and AlarmEvaluator over a real metric store (transitions, history, alarm_states)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ApiError
from modelhost.monitoring.alarm_evaluator import AlarmEvaluator
from modelhost.monitoring.alarm_params import alarm_config
from modelhost.monitoring.alarms import AlarmStatus, HistoryItem, created_status
from modelhost.monitoring.datapoints import Datapoint, MetricIdentity, StatisticSet
from modelhost.monitoring.metric_store import SqliteMetricStore

T0 = 1_768_212_000  # 2026-01-12 10:00:00 UTC, a multiple of 60
POLICY = ("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:1234:resource/sagemaker/endpoint/e/variant/v:"
          "policyName/p")
METRIC = MetricIdentity("Custom/App", "QueueDepth", (("EndpointName", "e"),))


def params(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "AlarmName": "depth-high", "Namespace": "Custom/App", "MetricName": "QueueDepth",
        "Dimensions": [{"Name": "EndpointName", "Value": "e"}], "Statistic": "Average", "Period": 60,
        "EvaluationPeriods": 2, "Threshold": 4.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "AlarmActions": [POLICY],
    }  # fmt: skip
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def history(name: str, at: float) -> HistoryItem:
    return HistoryItem(name, at, "ConfigurationUpdate", f'Alarm "{name}" created', "{}")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SqliteMetricStore(tmp_path / "metrics.db")
    yield s
    s.close()


def put(store: SqliteMetricStore, now: float = T0, **over: Any) -> None:
    config = alarm_config(params(**over), "us-east-1", "123456789012", now)
    store.alarms.put(config, created_status(now), history(config.name, now))


def test_create_then_update_keeps_state_and_tags(store: SqliteMetricStore) -> None:
    put(store, Tags=[{"Key": "team", "Value": "a"}])
    alarm = store.alarms.get("depth-high")
    assert alarm is not None and alarm.status.value == "INSUFFICIENT_DATA"
    assert alarm.status.reason == "Unchecked: Initial alarm creation"
    assert alarm.config.arn == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:depth-high"
    assert alarm.config.datapoints_to_alarm == 2 and not alarm.config.datapoints_given
    store.alarms.set_status("depth-high", AlarmStatus("ALARM", "r", None, T0 + 5, T0 + 5, (5.0,)), None)
    put(store, now=T0 + 10, Threshold=9.0, Tags=[{"Key": "team", "Value": "b"}])
    updated = store.alarms.get("depth-high")
    assert updated is not None
    assert updated.config.threshold == 9.0 and updated.config.updated_s == T0 + 10
    assert updated.config.tags == (("team", "a"),)  # tags of an update are ignored, as CloudWatch ignores them
    assert updated.status.value == "ALARM" and updated.status.recent_values == (5.0,)


def test_alarms_and_history_survive_reopen_and_delete(tmp_path: Path) -> None:
    first = SqliteMetricStore(tmp_path / "metrics.db")
    put(first)
    put(first, AlarmName="other")
    assert first.alarms.delete(["other", "nope"]) == ["other"]
    first.close()
    again = SqliteMetricStore(tmp_path / "metrics.db")
    try:
        assert [a.config.name for a in again.alarms.all()] == ["depth-high"]
        names = [h.alarm_name for h in again.alarms.history(None, None, None, None, ascending=True)]
        assert names == ["depth-high", "other"]  # a deleted alarm's history is kept
    finally:
        again.close()


@pytest.mark.parametrize(
    "over,code,words",
    [
        ({"Period": 45}, "InvalidParameterValue", "10, 20, 30 or a multiple of 60"),
        ({"Period": 3540, "EvaluationPeriods": 25}, "InvalidParameterValue", "must not exceed 86400"),
        ({"DatapointsToAlarm": 3}, "ValidationError", "DatapointsToAlarm (3) must be less than or equal"),
        ({"TreatMissingData": "sometimes"}, "InvalidParameterValue", "TreatMissingData"),
        ({"ExtendedStatistic": "p99", "Statistic": None}, "InvalidParameterValue", "percentile"),
        ({"ExtendedStatistic": "p99"}, "InvalidParameterCombination", "mutually exclusive"),
        ({"Statistic": None}, "MissingParameter", "Statistic or ExtendedStatistic"),
        ({"Threshold": None}, "MissingParameter", "Threshold"),
        ({"ComparisonOperator": "GreaterThanUpperThreshold"}, "InvalidParameterValue", "anomaly"),
        ({"AlarmActions": ["not-an-arn"]}, "InvalidParameterValue", "AlarmActions.member.1"),
        ({"MetricName": None, "Metrics": [{"Id": "m1", "Expression": "1"}]}, "InvalidParameterCombination",
         "Metrics and Namespace"),
        ({"MetricName": None}, "MissingParameter", "MetricName or Metrics"),
        ({"ThresholdMetricId": "ad1"}, "InvalidParameterValue", "not supported"),
    ],
)
def test_put_metric_alarm_checks(over: dict[str, Any], code: str, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        alarm_config(params(**over), "us-east-1", "123456789012", T0)
    assert caught.value.code == code
    assert words in caught.value.message


def add(store: SqliteMetricStore, at: int, value: float) -> None:
    store.add([Datapoint(METRIC, "Count", at, StatisticSet.of_value(value))])


def test_evaluator_transitions_history_and_states(store: SqliteMetricStore) -> None:
    put(store, AlarmName="depth-high")
    put(store, AlarmName="depth-low", ComparisonOperator="LessThanThreshold", Threshold=2.0, AlarmActions=None,
        OKActions=["arn:aws:sns:us-east-1:123456789012:t"])  # fmt: skip
    evaluator = AlarmEvaluator(store.alarms, store)
    assert evaluator.evaluate(T0 + 20) == []  # no data: stays INSUFFICIENT_DATA
    add(store, T0 - 60, 5.0)
    add(store, T0 + 5, 6.0)
    add(store, T0 + 30, 8.0)  # the minute of T0 averages 7.0
    transitions = evaluator.evaluate(T0 + 75)
    assert [(t.name, t.old_state, t.new_state) for t in transitions] == [
        ("depth-high", "INSUFFICIENT_DATA", "ALARM"),
        ("depth-low", "INSUFFICIENT_DATA", "OK"),
    ]
    assert transitions[0].actions == (POLICY,)
    assert transitions[0].reason.startswith(
        "Threshold Crossed: 2 out of the last 2 datapoints [7.0 (12/01/26 10:00:00)"
    )
    assert evaluator.evaluate(T0 + 80) == []  # unchanged: nothing written
    high = {s.name: s for s in evaluator.alarm_states()}["depth-high"]
    assert (high.state, high.last_value, high.values, high.threshold) == ("ALARM", 7.0, (5.0, 7.0), 4.0)
    assert high.breach == 3.0 and high.scaling_policy_arns == (POLICY,) and high.actions_for_state == (POLICY,)
    assert high.alarm_actions == (POLICY,)
    stored = store.alarms.get("depth-high")
    assert stored is not None and json.loads(stored.status.reason_data or "")["recentDatapoints"] == [5.0, 7.0]
    updates = store.alarms.history("depth-high", "StateUpdate", None, None, ascending=True)
    assert [u.summary for u in updates] == ["Alarm updated from INSUFFICIENT_DATA to ALARM"]
    assert json.loads(updates[0].data)["newState"]["stateValue"] == "ALARM"
    store.alarms.set_actions_enabled(["depth-high"], False)
    assert {s.name: s for s in evaluator.alarm_states()}["depth-high"].scaling_policy_arns == ()


def test_evaluation_of_a_reconfigured_alarm_is_not_written(store: SqliteMetricStore) -> None:
    put(store)
    alarm = store.alarms.get("depth-high")
    assert alarm is not None
    put(store, now=T0 + 1, Threshold=100.0)
    status = AlarmStatus("ALARM", "r", None, T0 + 2, T0 + 2)
    assert not store.alarms.set_status("depth-high", status, None, config_updated_s=alarm.config.updated_s)
    assert store.alarms.set_status("depth-high", status, None, config_updated_s=T0 + 1)


def test_metric_math_alarm_is_evaluated_on_its_returned_expression(store: SqliteMetricStore) -> None:
    metrics = [
        {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "Custom/App", "MetricName": "QueueDepth",
                                               "Dimensions": [{"Name": "EndpointName", "Value": "e"}]},
                                    "Period": 60, "Stat": "Sum"}, "ReturnData": False},
        {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True},
    ]  # fmt: skip
    put(store, Namespace=None, MetricName=None, Dimensions=None, Statistic=None, Period=None, Metrics=metrics,
        EvaluationPeriods=1, Threshold=10.0)  # fmt: skip
    add(store, T0 + 1, 3.0)
    add(store, T0 + 2, 3.0)
    evaluator = AlarmEvaluator(store.alarms, store)
    [transition] = evaluator.evaluate(T0 + 75)
    assert transition.new_state == "ALARM"
    assert evaluator.alarm_states()[0].last_value == 12.0
