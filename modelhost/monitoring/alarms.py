"""CloudWatch metric alarms as records: an alarm's configuration, its state, history items, and the API's
alarm errors (frozen records, pure).

An alarm watches one metric (namespace, name, exact dimensions, statistic, optional unit) or, for metric
math, a list of MetricDataQueries kept as sent; it compares each period's value with a static threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal

from modelhost.errors import ApiError, ModelhostError
from modelhost.monitoring.datapoints import MetricIdentity

StateValue = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
Comparison = Literal[
    "GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"
]
TreatMissing = Literal["missing", "notBreaching", "breaching", "ignore"]
HistoryType = Literal["ConfigurationUpdate", "StateUpdate", "Action"]

COMPARISONS: tuple[Comparison, ...] = (
    "GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold",
)  # fmt: skip
TREAT_MISSING: tuple[TreatMissing, ...] = ("missing", "notBreaching", "breaching", "ignore")
SCALING_POLICY_PREFIX = "arn:aws:autoscaling:"  # Application Auto Scaling (and EC2 Auto Scaling) policy ARNs


class AlarmNotFound(ApiError):
    code = "ResourceNotFound"
    status = 404


class AlarmLimitExceeded(ApiError):
    code = "LimitExceeded"
    status = 400


class InvalidFormat(ApiError):
    code = "InvalidFormat"
    status = 400


class AlarmStoreError(ModelhostError):
    """The alarm tables could not be opened, read or written (the path and SQLite's reason)."""


@dataclass(frozen=True, slots=True)
class AlarmConfig:
    """What PutMetricAlarm sets; a later PutMetricAlarm of the same name replaces all of it but the tags."""

    name: str
    arn: str  # arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME
    period_s: int  # the length of one evaluated period (10, 20, 30 or a multiple of 60)
    evaluation_periods: int  # N of "M out of N"
    datapoints_to_alarm: int  # M of "M out of N" (EvaluationPeriods when not given)
    threshold: float
    comparison: Comparison
    treat_missing: TreatMissing
    metric: MetricIdentity | None = None  # single-metric alarms; None for metric math
    statistic: str | None = None  # SampleCount | Average | Sum | Minimum | Maximum (single-metric alarms)
    unit: str | None = None  # only data of this unit counts (None: every unit, merged per period)
    metrics_json: str | None = None  # metric math alarms: the Metrics list as sent (botocore MetricDataQuery JSON)
    datapoints_given: bool = False  # whether DatapointsToAlarm was sent (DescribeAlarms shows it only then)
    treat_missing_given: bool = False  # likewise for TreatMissingData
    description: str | None = None
    actions_enabled: bool = True
    ok_actions: tuple[str, ...] = ()
    alarm_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    updated_s: float = 0.0  # AlarmConfigurationUpdatedTimestamp, epoch seconds

    def actions_for(self, state: StateValue) -> tuple[str, ...]:
        """The actions CloudWatch runs on entering `state`."""
        if state == "ALARM":
            return self.alarm_actions
        if state == "OK":
            return self.ok_actions
        return self.insufficient_data_actions

    def to_json(self) -> str:
        data: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if self.metric is not None:
            data["metric"] = [self.metric.namespace, self.metric.metric_name, [list(d) for d in self.metric.dimensions]]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AlarmConfig:
        data = json.loads(text)
        metric = data.pop("metric")
        if metric is not None:
            namespace, name, dimensions = metric
            metric = MetricIdentity(namespace, name, tuple((str(k), str(v)) for k, v in dimensions))
        for name in ("ok_actions", "alarm_actions", "insufficient_data_actions"):
            data[name] = tuple(data[name])
        data["tags"] = tuple((str(k), str(v)) for k, v in data["tags"])
        return cls(metric=metric, **data)


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """An alarm's state as DescribeAlarms shows it, changed by evaluation or SetAlarmState."""

    value: StateValue
    reason: str  # StateReason, CloudWatch's words
    reason_data: str | None  # StateReasonData: JSON text
    updated_s: float  # StateUpdatedTimestamp
    transitioned_s: float  # StateTransitionedTimestamp: the last change of value
    recent_values: tuple[float, ...] = ()  # the datapoints the state was decided on, oldest first


@dataclass(frozen=True, slots=True)
class MetricAlarm:
    config: AlarmConfig
    status: AlarmStatus

    def with_status(self, status: AlarmStatus) -> MetricAlarm:
        return replace(self, status=status)


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One DescribeAlarmHistory item (kept after the alarm is deleted, as CloudWatch keeps it)."""

    alarm_name: str
    timestamp_s: float
    item_type: HistoryType
    summary: str  # HistorySummary: "Alarm updated from OK to ALARM"
    data: str  # HistoryData: JSON text


def alarm_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{name}"


def created_status(now_s: float) -> AlarmStatus:
    """A new alarm's state, as CloudWatch sets it before the first evaluation."""
    return AlarmStatus("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation", None, now_s, now_s)
