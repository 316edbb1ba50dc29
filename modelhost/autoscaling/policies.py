"""The numbers the scaling decider works from: a policy's (target tracking, step scaling) and modelhost's own
evaluation settings, with SageMaker's for comparison (plain frozen values, no I/O).

The API's records (`records.py`) keep what the caller sent; the scaling loop turns a record into one of these,
passing AWS's strings through (`AdjustmentType.value`, `MetricAggregation.value`) and leaving unset cooldowns as
None, which the decider replaces with `ScalingSettings`' defaults.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

AdjustmentTypeName = Literal["ChangeInCapacity", "PercentChangeInCapacity", "ExactCapacity"]
AggregationName = Literal["Average", "Minimum", "Maximum"]

INVOCATIONS_PER_INSTANCE = "SageMakerVariantInvocationsPerInstance"
CONCURRENT_REQUESTS_HIGH_RESOLUTION = "SageMakerVariantConcurrentRequestsPerModelHighResolution"
AWS_DEFAULT_COOLDOWN_S = 300.0  # Application Auto Scaling's default for SageMaker variants (both directions, steps)


class MetricKind(enum.Enum):
    """How a 10 s series becomes the value a target is compared with."""

    # events counted per period (InvocationsPerInstance, any Sum or SampleCount statistic): the target is per
    # minute, as in AWS, so each 10 s sum is scaled by 60 / 10; a period with no sample counted nothing (0), as
    # CloudWatch writes no data point for a period without events
    COUNT_PER_MINUTE = "count"
    # a level (concurrent requests, utilisation; Average, Minimum, Maximum): compared as it is; a period with no
    # sample is missing data
    GAUGE = "gauge"


def metric_kind_of(predefined_metric_type: str | None, statistic: str | None = None) -> MetricKind:
    """The kind of a target-tracking metric: a predefined type, or a customized metric's statistic."""
    if predefined_metric_type == INVOCATIONS_PER_INSTANCE:
        return MetricKind.COUNT_PER_MINUTE
    if predefined_metric_type is not None:
        return MetricKind.GAUGE
    return MetricKind.COUNT_PER_MINUTE if statistic in ("Sum", "SampleCount") else MetricKind.GAUGE


@dataclass(frozen=True, slots=True)
class ScalingSettings:
    """modelhost's evaluation settings (the server's, shared by every policy). Defaults: `MODELHOST_DEFAULTS`."""

    resolution_s: float = 10.0  # one data point per this many seconds (the metric store's finest resolution)
    evaluation_s: float = 30.0  # AlarmHigh: every data point of the last this-many seconds above the target
    scale_in_points: int = 30  # AlarmLow: this many consecutive data points below scale_in_ratio × target
    scale_in_ratio: float = 0.9  # AlarmLow's threshold as a share of the target (AWS: 0.9)
    idle_s: float = 300.0  # after this long without a request, go to MinCapacity (0 when allowed)
    stale_after_s: float = 30.0  # a series flushed longer ago than this is no data
    default_scale_out_cooldown_s: float = 60.0  # a target-tracking policy's ScaleOutCooldown when it sets none
    default_scale_in_cooldown_s: float = 300.0  # ... its ScaleInCooldown when it sets none
    default_step_cooldown_s: float = AWS_DEFAULT_COOLDOWN_S  # a step policy's Cooldown when it sets none
    scale_to_zero: bool = True  # the idle rule (False: SageMaker, whose real-time endpoints have none)

    @property
    def scale_out_points(self) -> int:
        """Data points AlarmHigh needs: evaluation_s at resolution_s, at least one."""
        return max(1, round(self.evaluation_s / self.resolution_s))


MODELHOST_DEFAULTS = ScalingSettings()

# SageMaker's documented target tracking, in the same terms: 1-minute metrics, AlarmHigh of 3 data points over
# 3 minutes, AlarmLow of 15 over 15 minutes at 90 % of the target, 300 s cooldowns, no scale to zero for a
# real-time endpoint without inference components
SAGEMAKER_SETTINGS = ScalingSettings(
    resolution_s=60.0,
    evaluation_s=180.0,
    scale_in_points=15,
    scale_in_ratio=0.9,
    idle_s=float("inf"),
    stale_after_s=180.0,
    default_scale_out_cooldown_s=AWS_DEFAULT_COOLDOWN_S,
    default_scale_in_cooldown_s=AWS_DEFAULT_COOLDOWN_S,
    default_step_cooldown_s=AWS_DEFAULT_COOLDOWN_S,
    scale_to_zero=False,
)


@dataclass(frozen=True, slots=True)
class TargetTrackingPolicy:
    """A TargetTrackingScaling policy's numbers."""

    policy_name: str
    target_value: float  # per instance (per minute for COUNT_PER_MINUTE metrics); > 0
    alarm_high: str  # the names the activity's Cause cites ("TargetTracking-<resource>-AlarmHigh-<uuid>")
    alarm_low: str
    metric_kind: MetricKind = MetricKind.COUNT_PER_MINUTE
    scale_out_cooldown_s: float | None = None  # None: ScalingSettings.default_scale_out_cooldown_s
    scale_in_cooldown_s: float | None = None  # None: ScalingSettings.default_scale_in_cooldown_s
    disable_scale_in: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """A StepAdjustment: bounds relative to the alarm's threshold, None for an infinite bound."""

    scaling_adjustment: int
    lower_bound: float | None = None
    upper_bound: float | None = None


@dataclass(frozen=True, slots=True)
class StepScalingPolicy:
    """A StepScaling policy's numbers."""

    policy_name: str
    adjustment_type: AdjustmentTypeName
    steps: tuple[Step, ...]
    min_adjustment_magnitude: int | None = None  # PercentChangeInCapacity only
    cooldown_s: float | None = None  # None: ScalingSettings.default_step_cooldown_s
    aggregation: AggregationName = "Average"  # MetricAggregationType (None in the API means Average)
