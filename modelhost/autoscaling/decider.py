"""The scaling decision as a pure function of a policy, the variant's capacity, its metric series and the time:
target tracking, step scaling and scale to zero, each returning a `Decision` (no I/O, no clock reads).

Rules (docs/scaling.md tells them with their defaults and how they compare with SageMaker's):

* Target tracking. AlarmHigh: every one of the last `scale_out_points` data points above the target; the
  variant then goes at once to ceil(in_service × mean / target), bounded by Min/Max (never below 1). During
  ScaleOutCooldown the proposal is compared with the desired count, which already holds the capacity the last
  scale-out added, so only a larger scale-out happens (AWS's rule); a scale-out never waits for ScaleInCooldown.
  AlarmLow: the last `scale_in_points` points, averaged per minute, every minute below scale_in_ratio × target;
  the variant goes down to ceil(in_service × busiest minute / target), not during ScaleInCooldown and never with
  DisableScaleIn. No data decides nothing (what a missing period means: `MetricKind`).
* The idle rule: no request for `idle_s` -> MinCapacity (scale to zero when it is 0); at 0, a waiting request
  -> 1 at once.
* Step scaling: the step whose interval holds (aggregated metric − threshold) gives the change, computed and
  rounded as Application Auto Scaling does; Cooldown as AWS applies it.

Several policies on one variant: `combine` (the largest scale-out wins; a scale-in needs every policy's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelhost.autoscaling.policies import (
    MetricKind,
    ScalingSettings,
    Step,
    StepScalingPolicy,
    TargetTrackingPolicy,
)

_EPSILON = 1e-9  # ratios within this of a whole number are that number (3 × 70 / 70 is 3, not 4)

Sample = tuple[float, float]  # (start of the period in epoch seconds, the period's value)


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """A variant's metric at the settings' resolution, as the metric store holds it."""

    samples: tuple[Sample, ...]  # at most one per period, any order; periods without one are absent
    through_s: float  # the end of the newest period the store has flushed (epoch seconds)


@dataclass(frozen=True, slots=True)
class Capacity:
    """The variant's instance counts now and its scalable target's bounds."""

    desired: int  # DesiredInstanceCount now (instances serving + starting)
    in_service: int  # instances serving: the count per-instance metrics are divided by
    min_capacity: int
    max_capacity: int


@dataclass(frozen=True, slots=True)
class History:
    """The variant's last scaling activities (any policy's), for cooldowns; None: never."""

    last_scale_out_s: float | None = None
    scaled_out_from: int | None = None  # the desired count just before the last scale-out
    last_scale_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class Traffic:
    """What the router knows of the variant's requests (scale to zero)."""

    idle_since_s: float | None  # when its last request ended (or it went InService without one); None: busy
    request_waiting: bool = False  # a request is queued for the variant (at zero: waiting for a cold start)


@dataclass(frozen=True, slots=True)
class AlarmBreach:
    """A step policy's alarm in state ALARM, with the data points of its evaluation range."""

    alarm_name: str
    threshold: float
    values: tuple[float, ...]  # aggregated by the policy's MetricAggregationType; empty: no data


@dataclass(frozen=True, slots=True)
class Decision:
    """A new desired count, or None for no change; `cause` and `description` as DescribeScalingActivities
    words them (for no change, `cause` says why and `description` is empty)."""

    desired: int | None
    cause: str
    description: str = ""


def _change(desired: int, cause: str) -> Decision:
    return Decision(desired, cause, f"Setting desired instance count to {desired}.")


def _none(cause: str) -> Decision:
    return Decision(None, cause)


def _ceil(value: float) -> int:
    return math.ceil(value - _EPSILON)


def period_values(series: MetricSeries, settings: ScalingSettings, kind: MetricKind, points: int,
                  now_s: float) -> list[float] | None:  # fmt: skip
    """The values of the `points` newest flushed periods, oldest first, in the target's terms (per minute for
    counts); None when the series is stale, a gauge misses a period, or a count has no sample at all."""
    found = _window(series, settings, points, now_s)
    return None if found is None else _in_target_terms(found, kind, settings.resolution_s)


def _window(series: MetricSeries, settings: ScalingSettings, points: int, now_s: float) -> list[float | None] | None:
    """The samples of the `points` newest flushed periods (None where a period has none); None when stale."""
    if now_s - series.through_s > settings.stale_after_s:
        return None
    res = settings.resolution_s
    first = math.floor(series.through_s / res + _EPSILON) - points  # the oldest wanted period's index
    found: list[float | None] = [None] * points
    for ts, value in series.samples:
        index = math.floor(ts / res + _EPSILON) - first
        if 0 <= index < points:
            found[index] = value
    return found


def _in_target_terms(found: list[float | None], kind: MetricKind, resolution_s: float) -> list[float] | None:
    if kind is MetricKind.GAUGE:
        return None if None in found else [v for v in found if v is not None]
    if all(v is None for v in found):
        return None
    scale = 60.0 / resolution_s
    return [0.0 if v is None else v * scale for v in found]


def _bounded(count: int, capacity: Capacity) -> int:
    """`count` within the target's bounds; target tracking never proposes 0 (only the idle rule does)."""
    return max(capacity.min_capacity, 1, min(capacity.max_capacity, count))


def _in_cooldown(since_s: float | None, cooldown_s: float, now_s: float) -> bool:
    return since_s is not None and now_s - since_s < cooldown_s


def decide_target_tracking(policy: TargetTrackingPolicy, settings: ScalingSettings, capacity: Capacity,
                           history: History, series: MetricSeries, now_s: float) -> Decision:  # fmt: skip
    """Target tracking over `series` (the policy's metric, per instance) at `now_s`.

    The proposal is ceil(base × value / target) where base is the instances the metric was divided by
    (`in_service`, 1 while none serve, as the metric divides by at least 1). See the module docstring.
    """
    if capacity.desired <= 0:
        return _none("the variant has 0 instances: a waiting request wakes it")
    target = policy.target_value
    base = max(1, capacity.in_service)
    points = max(settings.scale_out_points, settings.scale_in_points)
    window = _window(series, settings, points, now_s)
    if window is None:
        return _none("no data")
    res = settings.resolution_s
    high = _in_target_terms(window[-settings.scale_out_points :], policy.metric_kind, res)
    if high is not None and all(v > target for v in high):
        proposal = _bounded(_ceil(base * (sum(high) / len(high)) / target), capacity)
        if proposal > capacity.desired:
            return _change(proposal, f"monitor alarm {policy.alarm_high} in state ALARM triggered policy "
                                     f"{policy.policy_name}")  # fmt: skip
        if capacity.desired >= capacity.max_capacity:
            return _none(f"{policy.alarm_high} in state ALARM: already at MaxCapacity {capacity.max_capacity}")
        cooldown_s = _cooldown(policy.scale_out_cooldown_s, settings.default_scale_out_cooldown_s)
        why = " the last scale-out's" if _in_cooldown(history.last_scale_out_s, cooldown_s, now_s) else ""
        return _none(f"{policy.alarm_high} in state ALARM: the {capacity.desired}{why} instances cover "
                     f"{proposal} needed")  # fmt: skip
    low = _in_target_terms(window[-settings.scale_in_points :], policy.metric_kind, res)
    return _scale_in(policy, settings, capacity, history, now_s, high, low)


def _scale_in(policy: TargetTrackingPolicy, settings: ScalingSettings, capacity: Capacity, history: History,
              now_s: float, high: list[float] | None, low: list[float] | None) -> Decision:  # fmt: skip
    target = policy.target_value
    if low is None:
        return _none("no data" if high is None else "the metric is within its target")
    low = _minute_means(low, settings.resolution_s)
    if not all(v < settings.scale_in_ratio * target for v in low):
        return _none("the metric is within its target")
    if policy.disable_scale_in:
        return _none(f"{policy.alarm_low} in state ALARM: scale-in is disabled for policy {policy.policy_name}")
    cooldown_s = _cooldown(policy.scale_in_cooldown_s, settings.default_scale_in_cooldown_s)
    if _in_cooldown(history.last_scale_in_s, cooldown_s, now_s):
        return _none(f"{policy.alarm_low} in state ALARM: scale-in waits for ScaleInCooldown ({cooldown_s:g} s)")
    proposal = _bounded(_ceil(max(1, capacity.in_service) * max(low) / target), capacity)
    if proposal >= capacity.desired:
        return _none(f"{policy.alarm_low} in state ALARM: already at {capacity.desired} instances "
                     f"(MinCapacity {capacity.min_capacity})")  # fmt: skip
    return _change(proposal, f"monitor alarm {policy.alarm_low} in state ALARM triggered policy {policy.policy_name}")


def _minute_means(values: list[float], resolution_s: float) -> list[float]:
    """`values` as 1-minute averages (newest minute last; an older partial minute averages what it has): scale-in
    is judged on minutes, as AWS's AlarmLow is, so that one quiet or busy 10 s period decides nothing."""
    per_minute = max(1, round(60.0 / resolution_s))
    ends = range(len(values), 0, -per_minute)
    return [sum(values[max(0, end - per_minute) : end]) / len(values[max(0, end - per_minute) : end])
            for end in reversed(ends)]  # fmt: skip


def _cooldown(value: float | None, default: float) -> float:
    return default if value is None else value


def decide_scale_to_zero(settings: ScalingSettings, capacity: Capacity, traffic: Traffic, now_s: float,
                         disable_scale_in: bool = False) -> Decision:  # fmt: skip
    """The idle rule: wake from zero at once when a request waits; after `idle_s` without a request, go to
    MinCapacity (0 when it is 0), scale-in allowed. Decide this before the policies: they have no data at zero or
    while idle (CloudWatch writes no invocation data point without requests, so target tracking alone would keep
    an idle variant's instances forever, as SageMaker's does)."""
    if capacity.desired == 0:
        if traffic.request_waiting and capacity.max_capacity >= 1:
            return _change(1, "a request is waiting for the variant at 0 instances")
        return _none("the variant is at 0 instances with no request waiting")
    if not settings.scale_to_zero or disable_scale_in:
        return _none("the idle rule is off")
    if traffic.request_waiting or traffic.idle_since_s is None:
        return _none("the variant is serving requests")
    floor = max(0, capacity.min_capacity)
    if capacity.desired <= floor:
        return _none(f"already at MinCapacity {capacity.min_capacity}")
    idle_s = now_s - traffic.idle_since_s
    if idle_s < settings.idle_s:
        return _none(f"idle for {idle_s:.0f} of {settings.idle_s:g} seconds")
    to_zero = " (scale to zero)" if floor == 0 else f" (MinCapacity {floor})"
    return _change(floor, f"no request for {idle_s:.0f} seconds{to_zero}")


def step_change(policy: StepScalingPolicy, capacity: int, step: Step) -> int:
    """The capacity a step asks for from `capacity`, before bounds and cooldown, as AWS computes it.

    PercentChangeInCapacity: the change is `capacity` × percent / 100, rounded as AWS rounds it (above 1: down;
    between 0 and 1: 1; between -1 and 0: -1; below -1: up, i.e. toward zero), then raised to
    MinAdjustmentMagnitude in size when smaller.
    """
    adjustment = step.scaling_adjustment
    if policy.adjustment_type == "ExactCapacity":
        return adjustment
    if policy.adjustment_type == "ChangeInCapacity":
        return capacity + adjustment
    raw = capacity * adjustment / 100.0
    change = _round_percent(raw)
    magnitude = policy.min_adjustment_magnitude
    if magnitude is not None and adjustment != 0 and abs(change) < magnitude:
        change = magnitude if adjustment > 0 else -magnitude
    return capacity + change


def _round_percent(raw: float) -> int:
    if raw >= 1.0:
        return math.floor(raw + _EPSILON)
    if raw > 0.0:
        return 1
    if raw <= -1.0:
        return math.ceil(raw - _EPSILON)
    if raw < 0.0:
        return -1
    return 0


def find_step(steps: Sequence[Step], breach: float) -> Step | None:
    """The step whose interval holds `breach` (metric − threshold). At or above the threshold a lower bound is
    inclusive and an upper bound exclusive; below it, the other way round (AWS's StepAdjustment rules)."""
    for step in steps:
        low = -math.inf if step.lower_bound is None else step.lower_bound
        high = math.inf if step.upper_bound is None else step.upper_bound
        if breach >= 0 and low <= breach < high:
            return step
    for step in steps:
        low = -math.inf if step.lower_bound is None else step.lower_bound
        high = math.inf if step.upper_bound is None else step.upper_bound
        if breach <= 0 and low < breach <= high:
            return step
    return None


def aggregate(values: Sequence[float], aggregation: str) -> float:
    """MetricAggregationType over the alarm's data points (Average, Minimum, Maximum)."""
    if aggregation == "Minimum":
        return min(values)
    if aggregation == "Maximum":
        return max(values)
    return sum(values) / len(values)


def decide_step_scaling(policy: StepScalingPolicy, settings: ScalingSettings, capacity: Capacity, history: History,
                        alarm: AlarmBreach, now_s: float) -> Decision:  # fmt: skip
    """Step scaling for an alarm in state ALARM.

    Cooldown (the policy's): a scale-in waits for it after the last scale-in. During it after a scale-out, the
    change is applied to the count before that scale-out (the capacity it added counts), and only a result above
    the desired count scales out (AWS's example: +2, then a +3 step during the cooldown adds 1).
    """
    if not alarm.values:
        return _none(f"alarm {alarm.alarm_name} has no data")
    metric = aggregate(alarm.values, policy.aggregation)
    step = find_step(policy.steps, metric - alarm.threshold)
    if step is None:
        return _none(f"no step adjustment of policy {policy.policy_name} covers {metric:g} "
                     f"(threshold {alarm.threshold:g})")  # fmt: skip
    cause = f"monitor alarm {alarm.alarm_name} in state ALARM triggered policy {policy.policy_name}"
    cooldown_s = _cooldown(policy.cooldown_s, settings.default_step_cooldown_s)
    current = capacity.desired
    wanted = _step_bounded(step_change(policy, current, step), capacity)
    if wanted > current and _in_cooldown(history.last_scale_out_s, cooldown_s, now_s):
        base = current if history.scaled_out_from is None else history.scaled_out_from
        wanted = _step_bounded(step_change(policy, base, step), capacity)
        if wanted <= current:
            return _none(f"{cause}: the capacity the last scale-out added covers it (Cooldown {cooldown_s:g} s)")
    if wanted < current and _in_cooldown(history.last_scale_in_s, cooldown_s, now_s):
        return _none(f"{cause}: scale-in waits for the Cooldown ({cooldown_s:g} s)")
    if wanted == current:
        return _none(f"{cause}: already at {current} instances")
    return _change(wanted, cause)


def _step_bounded(count: int, capacity: Capacity) -> int:
    """Step scaling may reach 0 when MinCapacity is 0 (SageMaker scales inference components from zero this way)."""
    return max(capacity.min_capacity, 0, min(capacity.max_capacity, count))


def combine(current: int, decisions: Sequence[Decision]) -> Decision:
    """Several policies' decisions for one variant, as AWS combines them: a scale-out if any asks for one (the
    largest wins); a scale-in only when every policy asks for one (to the largest count they ask for)."""
    outs = [d for d in decisions if d.desired is not None and d.desired > current]
    if outs:
        return max(outs, key=lambda d: d.desired or 0)
    ins = [d for d in decisions if d.desired is not None and d.desired < current]
    if ins and len(ins) == len(decisions):
        return max(ins, key=lambda d: d.desired or 0)
    holding = [d for d in decisions if d not in ins]
    return _none(holding[0].cause if holding else "no scaling policy")
