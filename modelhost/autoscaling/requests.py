"""Requests -> records: the checks Application Auto Scaling makes beyond the service model's shapes (which
`api.py` has already checked with the control plane's validator), worded as AWS words them where known (pure).
"""

from __future__ import annotations

import math
from typing import Any

from modelhost.api.pagination import epoch_seconds
from modelhost.autoscaling.naming import VariantRef, parse_resource_id
from modelhost.autoscaling.records import (
    DIMENSION,
    NAMESPACE,
    PREDEFINED_METRICS,
    AdjustmentType,
    CapacityBounds,
    CustomizedMetric,
    Dimension,
    MetricAggregation,
    MetricQuery,
    MetricStat,
    PredefinedMetric,
    StepAdjustment,
    StepScaling,
    Suspension,
    TargetTracking,
)
from modelhost.errors import ValidationError

UNSUPPORTED = "Unsupported service namespace, resource type or scalable dimension"
TARGET_VALUE_RANGE = (8.515920e-109, 6.174446e199)  # AWS's documented range of TargetValue
MAX_STEP_ADJUSTMENTS = 20
_QUERY_ID_START = "abcdefghijklmnopqrstuvwxyz"


def variant_ref(params: dict[str, Any], *, dimension_required: bool = True) -> VariantRef:
    """The variant a request's ServiceNamespace / ResourceId / ScalableDimension name."""
    namespace = params["ServiceNamespace"]
    if namespace != NAMESPACE:
        raise ValidationError(
            f"modelhost scales SageMaker endpoint variants only (ServiceNamespace sagemaker), not {namespace}."
        )
    dimension = params.get("ScalableDimension")
    if (dimension is not None or dimension_required) and dimension != DIMENSION:
        raise ValidationError(UNSUPPORTED)
    ref = parse_resource_id(params["ResourceId"])
    if ref is None:
        raise ValidationError(UNSUPPORTED)
    return ref


def namespace_served(params: dict[str, Any]) -> bool:
    """Describe* of another namespace or dimension is valid and finds nothing here."""
    dimension = params.get("ScalableDimension")
    return params["ServiceNamespace"] == NAMESPACE and dimension in (None, DIMENSION)


def capacity(params: dict[str, Any], current: tuple[int, int] | None) -> tuple[int, int]:
    """(MinCapacity, MaxCapacity) after the request: both are needed for a new target, either may change."""
    low, high = params.get("MinCapacity"), params.get("MaxCapacity")
    if current is None and (low is None or high is None):
        raise _new_target_needs_bounds()
    low = int(low) if low is not None else current[0] if current else 0
    high = int(high) if high is not None else current[1] if current else 0
    if low < 0 or high < 0:
        raise ValidationError("MinCapacity and MaxCapacity must be 0 or more.")
    if low > high:
        raise ValidationError("Minimum capacity cannot be greater than maximum capacity")
    return low, high


def _new_target_needs_bounds() -> ValidationError:
    return ValidationError("MinCapacity and MaxCapacity are required to register a new scalable target.")


def suspension(params: dict[str, Any], current: Suspension) -> Suspension:
    given = params.get("SuspendedState")
    if given is None:
        return current
    return Suspension(
        dynamic_scaling_in=bool(given.get("DynamicScalingInSuspended", current.dynamic_scaling_in)),
        dynamic_scaling_out=bool(given.get("DynamicScalingOutSuspended", current.dynamic_scaling_out)),
        scheduled_scaling=bool(given.get("ScheduledScalingSuspended", current.scheduled_scaling)),
    )


def _cooldown(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if value < 0:
        raise ValidationError(f"{name} must be 0 or more seconds, not {value}.")
    return int(value)


def target_tracking(config: dict[str, Any]) -> TargetTracking:
    target_value = float(config["TargetValue"])
    low, high = TARGET_VALUE_RANGE
    if not (math.isfinite(target_value) and low <= target_value <= high):
        raise ValidationError(f"TargetValue must be between {low:g} and {high:g}, not {target_value:g}.")
    predefined_in, customized_in = (
        config.get("PredefinedMetricSpecification"),
        config.get("CustomizedMetricSpecification"),
    )
    if (predefined_in is None) == (customized_in is None):
        raise _one_metric()
    predefined = None
    if predefined_in is not None:
        metric_type = predefined_in["PredefinedMetricType"]
        if metric_type not in PREDEFINED_METRICS:
            raise ValidationError(
                f"Scalable dimension {DIMENSION} only supports the following predefined metric types: "
                + ", ".join(PREDEFINED_METRICS)
            )
        predefined = PredefinedMetric(metric_type, predefined_in.get("ResourceLabel"))
    return TargetTracking(
        target_value=target_value,
        predefined=predefined,
        customized=None if customized_in is None else customized_metric(customized_in),
        scale_out_cooldown_s=_cooldown(config.get("ScaleOutCooldown"), "ScaleOutCooldown"),
        scale_in_cooldown_s=_cooldown(config.get("ScaleInCooldown"), "ScaleInCooldown"),
        disable_scale_in=bool(config.get("DisableScaleIn", False)),
    )


def _one_metric() -> ValidationError:
    return ValidationError(
        "A target tracking scaling policy needs exactly one of PredefinedMetricSpecification and "
        "CustomizedMetricSpecification."
    )


def _dims(items: list[dict[str, Any]] | None) -> tuple[Dimension, ...]:
    return tuple(Dimension(d["Name"], d["Value"]) for d in items or [])


def customized_metric(spec: dict[str, Any]) -> CustomizedMetric:
    queries = spec.get("Metrics")
    single = [k for k in ("MetricName", "Namespace", "Dimensions", "Statistic", "Unit") if k in spec]
    if queries is not None:
        if single:
            raise ValidationError(
                f"CustomizedMetricSpecification takes either Metrics or {', '.join(single)}, not both."
            )
        return CustomizedMetric(queries=_queries(queries))
    missing = [k for k in ("MetricName", "Namespace", "Statistic") if k not in spec]
    if missing:
        raise ValidationError(f"CustomizedMetricSpecification needs {', '.join(missing)} (or Metrics).")
    return CustomizedMetric(
        metric_name=spec["MetricName"],
        namespace=spec["Namespace"],
        dimensions=_dims(spec.get("Dimensions")),
        statistic=spec["Statistic"],
        unit=spec.get("Unit"),
    )


def _queries(items: list[dict[str, Any]]) -> tuple[MetricQuery, ...]:
    if not items:
        raise ValidationError("CustomizedMetricSpecification.Metrics needs at least one query.")
    queries = []
    for item in items:
        query_id = item["Id"]
        if query_id[0] not in _QUERY_ID_START or not query_id.replace("_", "a").isalnum():
            raise ValidationError(
                f"The metric query Id '{query_id[:100]}' must start with a lower-case letter and hold only "
                "letters, digits and underscores."
            )
        if ("Expression" in item) == ("MetricStat" in item):
            raise ValidationError(
                f"The metric query '{query_id[:100]}' needs exactly one of Expression and MetricStat."
            )
        stat = None
        if "MetricStat" in item:
            m = item["MetricStat"]
            metric = m["Metric"]
            stat = MetricStat(stat=m["Stat"], namespace=metric.get("Namespace"), metric_name=metric.get("MetricName"),
                              dimensions=_dims(metric.get("Dimensions")), unit=m.get("Unit"))  # fmt: skip
        queries.append(MetricQuery(id=query_id, expression=item.get("Expression"), metric_stat=stat,
                                   label=item.get("Label"), return_data=item.get("ReturnData")))  # fmt: skip
    ids = [q.id for q in queries]
    if len(set(ids)) != len(ids):
        raise ValidationError("The metric query Ids of CustomizedMetricSpecification.Metrics must be unique.")
    returned = [q for q in queries if q.return_data is not False]
    if len(returned) != 1:
        raise ValidationError(
            "Exactly one metric query of CustomizedMetricSpecification.Metrics must return data; set ReturnData "
            "to false on the others."
        )
    return tuple(queries)


def step_scaling(config: dict[str, Any]) -> StepScaling:
    if "AdjustmentType" not in config:
        raise ValidationError("AdjustmentType is required for a step scaling policy configuration.")
    adjustment_type = AdjustmentType(config["AdjustmentType"])
    steps = tuple(
        StepAdjustment(
            int(s["ScalingAdjustment"]), s.get("MetricIntervalLowerBound"), s.get("MetricIntervalUpperBound")
        )
        for s in config.get("StepAdjustments") or []
    )
    _check_steps(steps, adjustment_type)
    magnitude = config.get("MinAdjustmentMagnitude")
    if magnitude is not None and adjustment_type is not AdjustmentType.PERCENT_CHANGE_IN_CAPACITY:
        raise ValidationError("MinAdjustmentMagnitude is only valid with the PercentChangeInCapacity adjustment type.")
    if magnitude is not None and magnitude < 1:
        raise ValidationError("MinAdjustmentMagnitude must be 1 or more.")
    aggregation = config.get("MetricAggregationType")
    return StepScaling(
        adjustment_type=adjustment_type,
        adjustments=steps,
        min_adjustment_magnitude=None if magnitude is None else int(magnitude),
        cooldown_s=_cooldown(config.get("Cooldown"), "Cooldown"),
        aggregation=None if aggregation is None else MetricAggregation(aggregation),
    )


def _check_steps(steps: tuple[StepAdjustment, ...], adjustment_type: AdjustmentType) -> None:
    if not steps:
        raise ValidationError("A step scaling policy configuration needs at least one step adjustment.")
    if len(steps) > MAX_STEP_ADJUSTMENTS:
        raise ValidationError(f"A step scaling policy takes at most {MAX_STEP_ADJUSTMENTS} step adjustments.")
    if adjustment_type is AdjustmentType.EXACT_CAPACITY and any(s.scaling_adjustment < 0 for s in steps):
        raise ValidationError("The scaling adjustments of an ExactCapacity policy must be 0 or more.")
    for s in steps:
        if s.lower_bound is not None and s.upper_bound is not None and s.lower_bound >= s.upper_bound:
            raise ValidationError(
                f"A step adjustment's MetricIntervalLowerBound ({s.lower_bound:g}) must be less than its "
                f"MetricIntervalUpperBound ({s.upper_bound:g})."
            )
    ordered = sorted(steps, key=lambda s: -math.inf if s.lower_bound is None else s.lower_bound)
    if sum(s.lower_bound is None for s in steps) > 1 or sum(s.upper_bound is None for s in steps) > 1:
        raise ValidationError("At most one step adjustment may have a null lower bound, and one a null upper bound.")
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.upper_bound is None or after.lower_bound is None or before.upper_bound != after.lower_bound:
            raise ValidationError(
                "The step adjustments' intervals must not overlap or leave gaps: each MetricIntervalUpperBound must "
                "equal the next step's MetricIntervalLowerBound."
            )


def bounds(params: dict[str, Any], current: CapacityBounds | None) -> CapacityBounds:
    given = params.get("ScalableTargetAction")
    if given is None:
        if current is None:
            raise ValidationError(
                "ScalableTargetAction (MinCapacity, MaxCapacity or both) is required for a new scheduled action."
            )
        return current
    low, high = given.get("MinCapacity"), given.get("MaxCapacity")
    if low is None and high is None:
        raise ValidationError("ScalableTargetAction needs MinCapacity, MaxCapacity or both.")
    if (low is not None and low < 0) or (high is not None and high < 0):
        raise ValidationError("The MinCapacity and MaxCapacity of ScalableTargetAction must be 0 or more.")
    if low is not None and high is not None and low > high:
        raise ValidationError("Minimum capacity cannot be greater than maximum capacity")
    return CapacityBounds(None if low is None else int(low), None if high is None else int(high))


def timestamp(params: dict[str, Any], name: str) -> float | None:
    value = params.get(name)
    return None if value is None else epoch_seconds(value)
