"""Records -> the wire shapes of Describe* (AWS's PascalCase, epoch-second times); the only place the two meet
on the way out (pure). `requests.py` is the way in."""

from __future__ import annotations

from typing import Any

from modelhost.autoscaling.records import (
    DIMENSION,
    NAMESPACE,
    CustomizedMetric,
    Dimension,
    MetricQuery,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
    StepScaling,
    TargetTracking,
)


def _present(**members: Any) -> dict[str, Any]:
    return {k: v for k, v in members.items() if v is not None}


def _identity(resource_id: str) -> dict[str, Any]:
    return {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id, "ScalableDimension": DIMENSION}


def target_shape(target: ScalableTarget) -> dict[str, Any]:
    s = target.suspended
    return {
        **_identity(target.resource_id),
        "MinCapacity": target.min_capacity,
        "MaxCapacity": target.max_capacity,
        "RoleARN": target.role_arn,
        "CreationTime": target.created,
        "SuspendedState": {
            "DynamicScalingInSuspended": s.dynamic_scaling_in,
            "DynamicScalingOutSuspended": s.dynamic_scaling_out,
            "ScheduledScalingSuspended": s.scheduled_scaling,
        },
        "ScalableTargetARN": target.arn,
    }


def _dimensions(dimensions: tuple[Dimension, ...]) -> list[dict[str, str]] | None:
    return [{"Name": d.name, "Value": d.value} for d in dimensions] if dimensions else None


def _query(query: MetricQuery) -> dict[str, Any]:
    stat = None
    if query.metric_stat is not None:
        m = query.metric_stat
        metric = _present(Namespace=m.namespace, MetricName=m.metric_name, Dimensions=_dimensions(m.dimensions))
        stat = _present(Metric=metric, Stat=m.stat, Unit=m.unit)
    return _present(Id=query.id, Expression=query.expression, MetricStat=stat, Label=query.label,
                    ReturnData=query.return_data)  # fmt: skip


def _customized(metric: CustomizedMetric) -> dict[str, Any]:
    return _present(
        MetricName=metric.metric_name,
        Namespace=metric.namespace,
        Dimensions=_dimensions(metric.dimensions),
        Statistic=metric.statistic,
        Unit=metric.unit,
        Metrics=[_query(q) for q in metric.queries] or None,
    )


def target_tracking_shape(config: TargetTracking) -> dict[str, Any]:
    predefined = None
    if config.predefined is not None:
        predefined = _present(
            PredefinedMetricType=config.predefined.metric_type, ResourceLabel=config.predefined.resource_label
        )
    return _present(
        TargetValue=config.target_value,
        PredefinedMetricSpecification=predefined,
        CustomizedMetricSpecification=None if config.customized is None else _customized(config.customized),
        ScaleOutCooldown=config.scale_out_cooldown_s,
        ScaleInCooldown=config.scale_in_cooldown_s,
        DisableScaleIn=config.disable_scale_in,
    )


def step_scaling_shape(config: StepScaling) -> dict[str, Any]:
    steps = [
        _present(
            MetricIntervalLowerBound=a.lower_bound,
            MetricIntervalUpperBound=a.upper_bound,
            ScalingAdjustment=a.scaling_adjustment,
        )  # fmt: skip
        for a in config.adjustments
    ]
    return _present(
        AdjustmentType=config.adjustment_type.value,
        StepAdjustments=steps,
        MinAdjustmentMagnitude=config.min_adjustment_magnitude,
        Cooldown=config.cooldown_s,
        MetricAggregationType=None if config.aggregation is None else config.aggregation.value,
    )


def alarms_shape(policy: ScalingPolicy) -> list[dict[str, str]]:
    return [{"AlarmName": a.name, "AlarmARN": a.arn} for a in policy.alarms]


def policy_shape(policy: ScalingPolicy) -> dict[str, Any]:
    return _present(
        PolicyARN=policy.arn,
        PolicyName=policy.name,
        **_identity(policy.resource_id),
        PolicyType=policy.policy_type.value,
        StepScalingPolicyConfiguration=None if policy.step_scaling is None else step_scaling_shape(policy.step_scaling),
        TargetTrackingScalingPolicyConfiguration=(
            None if policy.target_tracking is None else target_tracking_shape(policy.target_tracking)
        ),
        Alarms=alarms_shape(policy),
        CreationTime=policy.created,
    )


def scheduled_action_shape(action: ScheduledAction) -> dict[str, Any]:
    bounds = _present(MinCapacity=action.bounds.min_capacity, MaxCapacity=action.bounds.max_capacity)
    return _present(
        ScheduledActionName=action.name,
        ScheduledActionARN=action.arn,
        **_identity(action.resource_id),
        Schedule=action.schedule,
        Timezone=action.timezone,
        StartTime=action.start,
        EndTime=action.end,
        ScalableTargetAction=bounds,
        CreationTime=action.created,
    )


def activity_shape(activity: ScalingActivity) -> dict[str, Any]:
    reasons = [
        _present(
            Code=r.code, MaxCapacity=r.max_capacity, MinCapacity=r.min_capacity, CurrentCapacity=r.current_capacity
        )  # fmt: skip
        for r in activity.not_scaled_reasons
    ]
    return _present(
        ActivityId=activity.activity_id,
        **_identity(activity.resource_id),
        Description=activity.description,
        Cause=activity.cause,
        StartTime=activity.start,
        EndTime=activity.end,
        StatusCode=activity.status.value,
        StatusMessage=activity.status_message,
        Details=activity.details,
        NotScaledReasons=reasons or None,
    )
