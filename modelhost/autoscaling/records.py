"""Application Auto Scaling's nouns as frozen records: scalable targets, scaling policies, scheduled actions and
scaling activities of SageMaker endpoint variants (no I/O; the store keeps them, `scaling_store.py`).

Names inside are snake_case; `shapes.py` is the only place they meet AWS's PascalCase. Times are epoch seconds,
cooldowns whole seconds. A member the caller left out stays None here, so Describe shows what was set and the
decider applies AWS's defaults itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# the predefined metrics a SageMaker variant's instance count can track
PREDEFINED_METRICS = (
    "SageMakerVariantInvocationsPerInstance",
    "SageMakerVariantConcurrentRequestsPerModelHighResolution",
)


class PolicyType(enum.Enum):
    STEP_SCALING = "StepScaling"
    TARGET_TRACKING = "TargetTrackingScaling"


class AdjustmentType(enum.Enum):
    CHANGE_IN_CAPACITY = "ChangeInCapacity"
    PERCENT_CHANGE_IN_CAPACITY = "PercentChangeInCapacity"
    EXACT_CAPACITY = "ExactCapacity"


class MetricAggregation(enum.Enum):
    AVERAGE = "Average"
    MINIMUM = "Minimum"
    MAXIMUM = "Maximum"


class ActivityStatus(enum.Enum):
    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    SUCCESSFUL = "Successful"
    OVERRIDDEN = "Overridden"
    UNFULFILLED = "Unfulfilled"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class Suspension:
    """SuspendedState: which kinds of scaling are paused for the target."""

    dynamic_scaling_in: bool = False
    dynamic_scaling_out: bool = False
    scheduled_scaling: bool = False


@dataclass(frozen=True, slots=True)
class ScalableTarget:
    """One variant registered for scaling, with its capacity bounds (instances)."""

    endpoint_name: str  # as the ResourceId names it (endpoint names are unique case-insensitively)
    variant_name: str
    resource_id: str  # "endpoint/NAME/variant/VARIANT", as first registered
    min_capacity: int
    max_capacity: int
    role_arn: str
    arn: str  # ScalableTargetARN
    created: float
    region: str
    suspended: Suspension = field(default_factory=Suspension)
    tags: Mapping[str, str] = field(default_factory=dict)  # Tags given when it was registered


@dataclass(frozen=True, slots=True)
class StepAdjustment:
    """Bounds are relative to the alarm's threshold; None is an infinite bound."""

    scaling_adjustment: int
    lower_bound: float | None = None
    upper_bound: float | None = None


@dataclass(frozen=True, slots=True)
class StepScaling:
    adjustment_type: AdjustmentType
    adjustments: tuple[StepAdjustment, ...]
    min_adjustment_magnitude: int | None = None  # PercentChangeInCapacity only
    cooldown_s: int | None = None
    aggregation: MetricAggregation | None = None


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class PredefinedMetric:
    metric_type: str  # one of PREDEFINED_METRICS
    resource_label: str | None = None


@dataclass(frozen=True, slots=True)
class MetricStat:
    """TargetTrackingMetricStat: a metric and the statistic taken of it."""

    stat: str
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: tuple[Dimension, ...] = ()
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One of a customized metric's queries (a metric or a metric-math expression over the others)."""

    id: str
    expression: str | None = None
    metric_stat: MetricStat | None = None
    label: str | None = None
    return_data: bool | None = None  # None: AWS's default, true


@dataclass(frozen=True, slots=True)
class CustomizedMetric:
    """Either one metric (namespace, name, dimensions, statistic) or `queries`, never both."""

    metric_name: str | None = None
    namespace: str | None = None
    dimensions: tuple[Dimension, ...] = ()
    statistic: str | None = None
    unit: str | None = None
    queries: tuple[MetricQuery, ...] = ()


@dataclass(frozen=True, slots=True)
class TargetTracking:
    target_value: float
    predefined: PredefinedMetric | None = None
    customized: CustomizedMetric | None = None
    scale_out_cooldown_s: int | None = None
    scale_in_cooldown_s: int | None = None
    disable_scale_in: bool = False


@dataclass(frozen=True, slots=True)
class Alarm:
    name: str
    arn: str


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    name: str
    arn: str
    endpoint_name: str
    variant_name: str
    resource_id: str
    policy_type: PolicyType
    created: float
    step_scaling: StepScaling | None = None  # set when policy_type is STEP_SCALING
    target_tracking: TargetTracking | None = None  # set when policy_type is TARGET_TRACKING
    alarms: tuple[Alarm, ...] = ()  # the alarms a target-tracking policy owns (AlarmHigh, AlarmLow)


@dataclass(frozen=True, slots=True)
class CapacityBounds:
    """ScalableTargetAction: the bounds a scheduled action sets when it runs (either may be left as it is)."""

    min_capacity: int | None = None
    max_capacity: int | None = None


@dataclass(frozen=True, slots=True)
class ScheduledAction:
    name: str
    arn: str
    endpoint_name: str
    variant_name: str
    resource_id: str
    schedule: str  # "at(...)", "rate(...)" or "cron(...)", checked by schedules.parse_schedule
    created: float
    bounds: CapacityBounds = field(default_factory=CapacityBounds)
    timezone: str | None = None  # IANA name; None: UTC
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True, slots=True)
class NotScaledReason:
    code: str  # e.g. "AlreadyAtMaxCapacity"
    max_capacity: int | None = None
    min_capacity: int | None = None
    current_capacity: int | None = None


@dataclass(frozen=True, slots=True)
class ScalingActivity:
    """What the scaling loop did (or chose not to do) to a target, and why, as DescribeScalingActivities tells it."""

    activity_id: str
    endpoint_name: str
    variant_name: str
    resource_id: str
    description: str  # "Setting desired instance count to 2."
    cause: str  # "monitor alarm ... in state ALARM triggered policy ..."
    start: float
    status: ActivityStatus
    end: float | None = None
    status_message: str | None = None
    details: str | None = None
    not_scaled_reasons: tuple[NotScaledReason, ...] = ()
