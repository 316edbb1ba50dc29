"""PutMetricAlarm's parameters checked as CloudWatch checks them and turned into an AlarmConfig (pure; the
service model's own constraints were checked before, by input_check)."""

from __future__ import annotations

import json
import math
from typing import Any, cast

from modelhost.monitoring.alarms import COMPARISONS, TREAT_MISSING, AlarmConfig, Comparison, TreatMissing, alarm_arn
from modelhost.monitoring.errors import (
    CloudWatchValidationError,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
)
from modelhost.monitoring.metric_params import check_statistic, metric_identity

ALARM_PERIODS = (10, 20, 30)  # and any multiple of 60
DAY_S = 86400
WEEK_S = 7 * DAY_S
SINGLE_METRIC = ("Namespace", "MetricName", "Dimensions", "Period", "Unit", "Statistic", "ExtendedStatistic")
NOT_SUPPORTED = ("ThresholdMetricId", "EvaluationCriteria", "EvaluateLowSampleCountPercentile", "EvaluationWindow",
                 "WarmUpConfiguration", "EvaluationInterval", "ActionConfiguration")


def check_period(period_s: int, name: str) -> None:
    if period_s not in ALARM_PERIODS and period_s % 60:
        raise InvalidParameterValue(f"The parameter {name} must be 10, 20, 30 or a multiple of 60.")


def _check_range(period_s: int, evaluation_periods: int) -> None:
    """CloudWatch's limit on how far back an alarm looks: a day under hourly periods, else a week."""
    limit = DAY_S if period_s < 3600 else WEEK_S
    if period_s * evaluation_periods > limit:
        raise InvalidParameterValue(
            f"The product of Period ({period_s}) and EvaluationPeriods ({evaluation_periods}) must not exceed "
            f"{limit} seconds ({'one day' if limit == DAY_S else 'seven days'}) for this Period."
        )


def _check_actions(params: dict[str, Any]) -> None:
    for name in ("OKActions", "AlarmActions", "InsufficientDataActions"):
        for i, arn in enumerate(params.get(name, []), start=1):
            parts = arn.split(":")
            if len(parts) < 6 or parts[0] != "arn" or not parts[2]:
                raise InvalidParameterValue(
                    f"The value {arn[:200]} for parameter {name}.member.{i} is not a valid ARN."
                )


def _single_metric(params: dict[str, Any]) -> dict[str, Any]:
    for name in ("Namespace", "Period"):
        if name not in params:
            raise MissingParameter(f"The parameter {name} is required.")
    if "Statistic" in params and "ExtendedStatistic" in params:
        raise InvalidParameterCombination(
            "The parameters Statistic and ExtendedStatistic are mutually exclusive and you have specified both."
        )
    if "ExtendedStatistic" in params:
        check_statistic(params["ExtendedStatistic"], "ExtendedStatistic")
    if "Statistic" not in params:
        raise MissingParameter("The parameter Statistic or ExtendedStatistic is required.")
    check_period(params["Period"], "Period")
    names = [d["Name"] for d in params.get("Dimensions", [])]
    if len(set(names)) < len(names):
        raise InvalidParameterValue("The parameter Dimensions must not name a dimension twice.")
    return {
        "metric": metric_identity(params["Namespace"], params["MetricName"], params.get("Dimensions")),
        "statistic": params["Statistic"],
        "unit": params.get("Unit"),
        "period_s": params["Period"],
    }


def metrics_period(metrics: list[dict[str, Any]]) -> int:
    """A metric math alarm's period: that of its returned query (its MetricStat's, or its own Period), else
    the first MetricStat's. Exactly one query must return data, as CloudWatch requires of alarms."""
    returned = [q for q in metrics if q.get("ReturnData", True)]
    if len(returned) != 1:
        raise CloudWatchValidationError(
            "Exactly one element of the metrics list should return data (ReturnData set to true)."
        )
    chosen = returned[0]
    if "MetricStat" in chosen:
        return int(chosen["MetricStat"]["Period"])
    if "Period" in chosen:
        return int(chosen["Period"])
    stats = [q["MetricStat"]["Period"] for q in metrics if "MetricStat" in q]
    if not stats:
        raise CloudWatchValidationError("The metrics list needs at least one MetricStat to take its period from.")
    return int(stats[0])


def _math(params: dict[str, Any]) -> dict[str, Any]:
    given = [name for name in SINGLE_METRIC if name in params]
    if given:
        raise InvalidParameterCombination(
            f"The parameters Metrics and {given[0]} are mutually exclusive and you have specified both."
        )
    metrics = params["Metrics"]
    for i, query in enumerate(metrics, start=1):
        if query.get("AccountId") is not None:
            raise InvalidParameterValue(f"The parameter Metrics.member.{i}.AccountId is not supported: "
                                        "this server holds one account's metrics.")  # fmt: skip
    period_s = metrics_period(metrics)
    check_period(period_s, "Metrics.Period")
    return {"metrics_json": json.dumps(metrics, separators=(",", ":")), "period_s": period_s}


def alarm_config(params: dict[str, Any], region: str, account_id: str, now_s: float) -> AlarmConfig:
    """The alarm PutMetricAlarm describes, or the CloudWatch error for the first thing wrong with it."""
    for name in NOT_SUPPORTED:
        if name in params:
            raise InvalidParameterValue(f"The parameter {name} is not supported by modelhost: alarms compare a "
                                        "metric or metric math expression with a static Threshold.")  # fmt: skip
    for name in ("EvaluationPeriods", "ComparisonOperator", "Threshold"):
        if name not in params:
            raise MissingParameter(f"The parameter {name} is required.")
    if params["ComparisonOperator"] not in COMPARISONS:
        raise InvalidParameterValue(
            f"The value {params['ComparisonOperator']} for parameter ComparisonOperator is not supported: anomaly "
            f"detection bands are not kept here. Use one of {', '.join(COMPARISONS)}."
        )
    if "MetricName" in params and "Metrics" in params:
        raise InvalidParameterCombination(
            "The parameters MetricName and Metrics are mutually exclusive and you have specified both."
        )
    if "MetricName" not in params and "Metrics" not in params:
        raise MissingParameter("One of the parameters MetricName or Metrics is required.")
    source = _single_metric(params) if "MetricName" in params else _math(params)
    threshold = float(params["Threshold"])
    if not math.isfinite(threshold):
        raise InvalidParameterValue(f"The value {threshold} for parameter Threshold is invalid.")
    evaluation_periods = params["EvaluationPeriods"]
    datapoints = params.get("DatapointsToAlarm", evaluation_periods)
    if datapoints > evaluation_periods:
        raise CloudWatchValidationError(
            f"DatapointsToAlarm ({datapoints}) must be less than or equal to EvaluationPeriods ({evaluation_periods})."
        )
    _check_range(source["period_s"], evaluation_periods)
    treat = params.get("TreatMissingData", "missing")
    if treat not in TREAT_MISSING:
        raise InvalidParameterValue(f"The value {treat[:100]} for parameter TreatMissingData is not valid; use one "
                                    f"of {', '.join(TREAT_MISSING)}.")  # fmt: skip
    _check_actions(params)
    return AlarmConfig(
        name=params["AlarmName"],
        arn=alarm_arn(region, account_id, params["AlarmName"]),
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=datapoints,
        threshold=threshold,
        comparison=cast(Comparison, params["ComparisonOperator"]),
        treat_missing=cast(TreatMissing, treat),
        datapoints_given="DatapointsToAlarm" in params,
        treat_missing_given="TreatMissingData" in params,
        description=params.get("AlarmDescription"),
        actions_enabled=params.get("ActionsEnabled", True),
        ok_actions=tuple(params.get("OKActions", [])),
        alarm_actions=tuple(params.get("AlarmActions", [])),
        insufficient_data_actions=tuple(params.get("InsufficientDataActions", [])),
        tags=tuple((t["Key"], t["Value"]) for t in params.get("Tags", [])),
        updated_s=now_s,
        **source,
    )
