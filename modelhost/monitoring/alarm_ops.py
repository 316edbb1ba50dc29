"""The alarm operations of the CloudWatch API: PutMetricAlarm, DescribeAlarms, DescribeAlarmsForMetric,
DeleteAlarms, SetAlarmState, Enable/DisableAlarmActions and DescribeAlarmHistory, over the alarm store."""

from __future__ import annotations

import json
from typing import Any

from modelhost.monitoring import paging
from modelhost.monitoring.alarm_evaluator import state_history
from modelhost.monitoring.alarm_params import alarm_config
from modelhost.monitoring.alarm_series import math_values
from modelhost.monitoring.alarm_store import SqliteAlarmStore
from modelhost.monitoring.alarms import (
    AlarmNotFound,
    AlarmStatus,
    HistoryItem,
    InvalidFormat,
    MetricAlarm,
    created_status,
)
from modelhost.monitoring.context import CloudWatchContext
from modelhost.monitoring.errors import InvalidParameterCombination
from modelhost.monitoring.metric_params import metric_identity

DESCRIBE_PAGE = 50  # DescribeAlarms' default MaxRecords
HISTORY_PAGE = 100  # DescribeAlarmHistory's default MaxRecords


def _alarms(ctx: CloudWatchContext) -> SqliteAlarmStore:
    return ctx.store.alarms


def alarm_shape(alarm: MetricAlarm) -> dict[str, Any]:
    """A MetricAlarm as DescribeAlarms answers it (members without a value left out)."""
    c, s = alarm.config, alarm.status
    shape: dict[str, Any] = {
        "AlarmName": c.name, "AlarmArn": c.arn, "AlarmDescription": c.description,
        "AlarmConfigurationUpdatedTimestamp": c.updated_s, "ActionsEnabled": c.actions_enabled,
        "OKActions": list(c.ok_actions), "AlarmActions": list(c.alarm_actions),
        "InsufficientDataActions": list(c.insufficient_data_actions),
        "StateValue": s.value, "StateReason": s.reason, "StateReasonData": s.reason_data,
        "StateUpdatedTimestamp": s.updated_s, "StateTransitionedTimestamp": s.transitioned_s,
        "EvaluationPeriods": c.evaluation_periods, "Threshold": c.threshold, "ComparisonOperator": c.comparison,
    }  # fmt: skip
    if c.metric is not None:
        shape.update({
            "Namespace": c.metric.namespace, "MetricName": c.metric.metric_name, "Statistic": c.statistic,
            "Dimensions": [{"Name": name, "Value": value} for name, value in c.metric.dimensions],
            "Period": c.period_s, "Unit": c.unit,
        })  # fmt: skip
    if c.metrics_json is not None:
        shape["Metrics"] = json.loads(c.metrics_json)
    if c.datapoints_given:
        shape["DatapointsToAlarm"] = c.datapoints_to_alarm
    if c.treat_missing_given:
        shape["TreatMissingData"] = c.treat_missing
    return {key: value for key, value in shape.items() if value is not None}


def put_metric_alarm(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    config = alarm_config(params, ctx.region, ctx.account_id, ctx.now_s)
    if config.metrics_json is not None:  # the queries must be answerable: ids, expressions, statistics
        span = config.period_s * config.evaluation_periods
        start = int(ctx.now_s // config.period_s) * config.period_s - span
        math_values(ctx.store, json.loads(config.metrics_json), start, start + span, ctx.now_s)
    existing = _alarms(ctx).get(config.name)
    verb = "created" if existing is None else "updated"
    data = {"version": "1.0", "type": "Create" if existing is None else "Update"}
    summary = f'Alarm "{config.name}" {verb}'
    history = HistoryItem(config.name, ctx.now_s, "ConfigurationUpdate", summary, json.dumps(data))
    _alarms(ctx).put(config, created_status(ctx.now_s), history)
    return {}


def _selected(ctx: CloudWatchContext, params: dict[str, Any]) -> list[MetricAlarm]:
    names, prefix = params.get("AlarmNames"), params.get("AlarmNamePrefix")
    if names is not None and prefix is not None:
        raise InvalidParameterCombination(
            "The parameters AlarmNames and AlarmNamePrefix are mutually exclusive and you have specified both."
        )
    types = params.get("AlarmTypes")
    if types is not None and "MetricAlarm" not in types:
        return []
    if "ChildrenOfAlarmName" in params or "ParentsOfAlarmName" in params:
        return []  # those name composite alarms' relations, and this server keeps no composite alarms
    alarms = _alarms(ctx).all()
    if names is not None:
        wanted = set(names)
        alarms = [a for a in alarms if a.config.name in wanted]
    if prefix is not None:
        alarms = [a for a in alarms if a.config.name.startswith(prefix)]
    state = params.get("StateValue")
    if state is not None:
        alarms = [a for a in alarms if a.status.value == state]
    action = params.get("ActionPrefix")
    if action is not None:
        alarms = [a for a in alarms if any(arn.startswith(action) for arn in _all_actions(a))]
    return alarms


def _all_actions(alarm: MetricAlarm) -> tuple[str, ...]:
    c = alarm.config
    return c.ok_actions + c.alarm_actions + c.insufficient_data_actions


def describe_alarms(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    offset = paging.decode_token(params)
    alarms = _selected(ctx, params)
    size = params.get("MaxRecords", DESCRIBE_PAGE)
    result: dict[str, Any] = {"MetricAlarms": [alarm_shape(a) for a in alarms[offset : offset + size]]}
    if "CompositeAlarm" in params.get("AlarmTypes", []):
        result["CompositeAlarms"] = []
    if offset + size < len(alarms):
        result["NextToken"] = paging.encode_token(offset + size, params)
    return result


def describe_alarms_for_metric(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    """Single-metric alarms on the metric; each filter given must match (Dimensions exactly)."""
    wanted = metric_identity(params["Namespace"], params["MetricName"], params.get("Dimensions"))
    matched = []
    for alarm in _alarms(ctx).all():
        c = alarm.config
        if c.metric is None or (c.metric.namespace, c.metric.metric_name) != (wanted.namespace, wanted.metric_name):
            continue
        if "Dimensions" in params and c.metric.dimensions != wanted.dimensions:
            continue
        if "ExtendedStatistic" in params:
            continue  # percentile alarms are refused at PutMetricAlarm, so none matches
        checks = (("Statistic", c.statistic), ("Period", c.period_s), ("Unit", c.unit))
        if all(params[key] == value for key, value in checks if key in params):
            matched.append(alarm_shape(alarm))
    return {"MetricAlarms": matched}


def delete_alarms(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    """The named alarms that exist are deleted; ResourceNotFound then names the others."""
    names: list[str] = params["AlarmNames"]
    removed = set(_alarms(ctx).delete(names))
    missing = [name for name in dict.fromkeys(names) if name not in removed]
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise AlarmNotFound(f"{len(missing)} of the {len(set(names))} alarms named do not exist: {shown}.")
    return {}


def _recent_values(reason_data: str | None) -> tuple[float, ...]:
    """SetAlarmState's StateReasonData as Auto Scaling reads it: its `recentDatapoints`, when it has them."""
    if not reason_data:
        return ()
    try:
        data = json.loads(reason_data)
    except ValueError as exc:
        raise InvalidFormat(f"The parameter StateReasonData is not valid JSON: {exc}") from None
    points = data.get("recentDatapoints") if isinstance(data, dict) else None
    if isinstance(points, list) and all(isinstance(p, int | float) and not isinstance(p, bool) for p in points):
        return tuple(float(p) for p in points)
    return ()


def set_alarm_state(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params["AlarmName"]
    values = _recent_values(params.get("StateReasonData"))
    alarm = _alarms(ctx).get(name)
    if alarm is None:
        raise AlarmNotFound(f"Alarm {name} not found")
    old = alarm.status
    transitioned = ctx.now_s if params["StateValue"] != old.value else old.transitioned_s
    new = AlarmStatus(params["StateValue"], params["StateReason"], params.get("StateReasonData"), ctx.now_s,
                      transitioned, values)  # fmt: skip
    if not _alarms(ctx).set_status(name, new, state_history(name, old, new)):
        raise AlarmNotFound(f"Alarm {name} not found")
    return {}


def enable_alarm_actions(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    _alarms(ctx).set_actions_enabled(params["AlarmNames"], True)
    return {}


def disable_alarm_actions(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    _alarms(ctx).set_actions_enabled(params["AlarmNames"], False)
    return {}


def describe_alarm_history(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    types = params.get("AlarmTypes")
    offset = paging.decode_token(params)
    items: list[HistoryItem] = []
    if types is None or "MetricAlarm" in types:
        items = _alarms(ctx).history(
            params.get("AlarmName"), params.get("HistoryItemType"), params.get("StartDate"), params.get("EndDate"),
            ascending=params.get("ScanBy") == "TimestampAscending",
        )  # fmt: skip
    size = params.get("MaxRecords", HISTORY_PAGE)
    page = items[offset : offset + size]
    result: dict[str, Any] = {
        "AlarmHistoryItems": [
            {"AlarmName": i.alarm_name, "AlarmType": "MetricAlarm", "Timestamp": i.timestamp_s,
             "HistoryItemType": i.item_type, "HistorySummary": i.summary, "HistoryData": i.data}
            for i in page
        ]
    }  # fmt: skip
    if offset + size < len(items):
        result["NextToken"] = paging.encode_token(offset + size, params)
    return result


OPERATIONS = {
    "PutMetricAlarm": put_metric_alarm,
    "DescribeAlarms": describe_alarms,
    "DescribeAlarmsForMetric": describe_alarms_for_metric,
    "DeleteAlarms": delete_alarms,
    "SetAlarmState": set_alarm_state,
    "EnableAlarmActions": enable_alarm_actions,
    "DisableAlarmActions": disable_alarm_actions,
    "DescribeAlarmHistory": describe_alarm_history,
}
