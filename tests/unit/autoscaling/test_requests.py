"""The checks beyond the service model's shapes: capacity, metrics, step adjustments, bounds."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.autoscaling import requests
from modelhost.autoscaling.records import AdjustmentType
from modelhost.errors import ValidationError

STEP = {"AdjustmentType": "ChangeInCapacity"}


def steps(*bounds: tuple[float | None, float | None]) -> dict[str, Any]:
    adjustments = []
    for low, high in bounds:
        item: dict[str, Any] = {"ScalingAdjustment": 1}
        if low is not None:
            item["MetricIntervalLowerBound"] = low
        if high is not None:
            item["MetricIntervalUpperBound"] = high
        adjustments.append(item)
    return {**STEP, "StepAdjustments": adjustments}


def test_capacity_of_new_and_existing_targets() -> None:
    assert requests.capacity({"MinCapacity": 0, "MaxCapacity": 0}, None) == (0, 0)  # scale to zero
    assert requests.capacity({"MaxCapacity": 9}, (1, 4)) == (1, 9)
    for params, current in (({"MaxCapacity": 2}, None), ({"MinCapacity": 5}, (1, 4)), ({"MinCapacity": -1}, (1, 4))):
        with pytest.raises(ValidationError):
            requests.capacity(params, current)


def test_contiguous_steps_are_accepted() -> None:
    config = requests.step_scaling(steps((None, 0.0), (0.0, 10.0), (10.0, None)))
    assert config.adjustment_type is AdjustmentType.CHANGE_IN_CAPACITY and len(config.adjustments) == 3


@pytest.mark.parametrize(
    "config",
    [
        steps((0.0, 10.0), (5.0, None)),  # overlap
        steps((0.0, 5.0), (10.0, None)),  # gap
        steps((None, 5.0), (None, 10.0)),  # two open lower bounds
        steps((5.0, 5.0)),  # empty interval
        {**STEP, "StepAdjustments": []},
        {"StepAdjustments": [{"ScalingAdjustment": 1}]},  # no AdjustmentType
        {**steps((0.0, None)), "MinAdjustmentMagnitude": 1},  # only with PercentChangeInCapacity
        {**steps((0.0, None)), "AdjustmentType": "ExactCapacity", "StepAdjustments": [{"ScalingAdjustment": -1}]},
        {**steps((0.0, None)), "Cooldown": -5},
    ],
)
def test_bad_step_configurations_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        requests.step_scaling(config)


def test_target_tracking_needs_one_metric_and_a_target_in_range() -> None:
    predefined = {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    assert requests.target_tracking({"TargetValue": 1, "PredefinedMetricSpecification": predefined}).target_value == 1.0
    custom = {"MetricName": "m", "Namespace": "n", "Statistic": "Sum"}
    for config in (
        {"TargetValue": 1.0},
        {"TargetValue": 1.0, "PredefinedMetricSpecification": predefined, "CustomizedMetricSpecification": custom},
        {"TargetValue": 0.0, "PredefinedMetricSpecification": predefined},
        {"TargetValue": 1.0, "CustomizedMetricSpecification": {"MetricName": "m"}},
        {"TargetValue": 1.0, "CustomizedMetricSpecification": {**custom, "Metrics": [{"Id": "a", "Expression": "1"}]}},
        {"TargetValue": 1.0, "CustomizedMetricSpecification": {"Metrics": [{"Id": "Bad", "Expression": "1"}]}},
    ):
        with pytest.raises(ValidationError):
            requests.target_tracking(config)


def test_scheduled_bounds() -> None:
    assert requests.bounds({"ScalableTargetAction": {"MaxCapacity": 0}}, None).max_capacity == 0
    for params in ({}, {"ScalableTargetAction": {}}, {"ScalableTargetAction": {"MinCapacity": 2, "MaxCapacity": 1}}):
        with pytest.raises(ValidationError):
            requests.bounds(params, None)
