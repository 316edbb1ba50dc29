"""From the Application Auto Scaling records (what the API stored) to the decider's values, and which metric
each target-tracking policy reads from the metric store (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.autoscaling.policies import (
    CONCURRENT_REQUESTS_HIGH_RESOLUTION,
    INVOCATIONS_PER_INSTANCE,
    Step,
    StepScalingPolicy,
    TargetTrackingPolicy,
    metric_kind_of,
)
from modelhost.autoscaling.records import ScalingPolicy
from modelhost.monitoring.datapoints import MetricIdentity, dimensions_of
from modelhost.monitoring.invocations import SAGEMAKER_NAMESPACE


@dataclass(frozen=True, slots=True)
class MetricRead:
    """Which series a policy's decision is made from: the metric and the statistic taken of each period."""

    metric: MetricIdentity
    statistic: str  # SampleCount | Sum | Minimum | Maximum | Average


def variant_dimensions(endpoint: str, variant: str) -> tuple[tuple[str, str], ...]:
    return dimensions_of((("EndpointName", endpoint), ("VariantName", variant)))


def metric_read(policy: ScalingPolicy) -> MetricRead | None:
    """The series a target-tracking policy tracks; None when it names none this server records (a metric-math
    customization: not evaluated, said in the activity)."""
    tracking = policy.target_tracking
    if tracking is None:
        return None
    dims = variant_dimensions(policy.endpoint_name, policy.variant_name)
    if tracking.predefined is not None:
        kind = tracking.predefined.metric_type
        if kind == INVOCATIONS_PER_INSTANCE:
            return MetricRead(MetricIdentity(SAGEMAKER_NAMESPACE, "InvocationsPerInstance", dims), "Sum")
        if kind == CONCURRENT_REQUESTS_HIGH_RESOLUTION:
            return MetricRead(MetricIdentity(SAGEMAKER_NAMESPACE, "ConcurrentRequestsPerModel", dims), "Maximum")
        return None
    custom = tracking.customized
    if custom is None or custom.queries or not (custom.namespace and custom.metric_name and custom.statistic):
        return None
    own = dimensions_of((d.name, d.value) for d in custom.dimensions)
    return MetricRead(MetricIdentity(custom.namespace, custom.metric_name, own), custom.statistic)


def tracking_policy(policy: ScalingPolicy) -> TargetTrackingPolicy | None:
    tracking = policy.target_tracking
    if tracking is None:
        return None
    predefined = tracking.predefined.metric_type if tracking.predefined is not None else None
    statistic = tracking.customized.statistic if tracking.customized is not None else None
    named = f"TargetTracking-{policy.resource_id}"
    high = next((a.name for a in policy.alarms if "AlarmHigh" in a.name), f"{named}-AlarmHigh")
    low = next((a.name for a in policy.alarms if "AlarmLow" in a.name), f"{named}-AlarmLow")
    return TargetTrackingPolicy(
        policy_name=policy.name,
        target_value=tracking.target_value,
        alarm_high=high,
        alarm_low=low,
        metric_kind=metric_kind_of(predefined, statistic),
        scale_out_cooldown_s=tracking.scale_out_cooldown_s,
        scale_in_cooldown_s=tracking.scale_in_cooldown_s,
        disable_scale_in=tracking.disable_scale_in,
    )


def step_policy(policy: ScalingPolicy) -> StepScalingPolicy | None:
    step = policy.step_scaling
    if step is None:
        return None
    return StepScalingPolicy(
        policy_name=policy.name,
        adjustment_type=step.adjustment_type.value,
        steps=tuple(Step(a.scaling_adjustment, a.lower_bound, a.upper_bound) for a in step.adjustments),
        min_adjustment_magnitude=step.min_adjustment_magnitude,
        cooldown_s=step.cooldown_s,
        aggregation=step.aggregation.value if step.aggregation is not None else "Average",
    )
