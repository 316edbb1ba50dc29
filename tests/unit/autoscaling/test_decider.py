"""The scaling decider, rule by rule: target tracking, scale to zero, step scaling and combining policies."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelhost.autoscaling.decider import (
    AlarmBreach,
    Capacity,
    Decision,
    History,
    MetricSeries,
    Traffic,
    combine,
    decide_scale_to_zero,
    decide_step_scaling,
    decide_target_tracking,
    find_step,
    period_values,
    step_change,
)
from modelhost.autoscaling.policies import (
    CONCURRENT_REQUESTS_HIGH_RESOLUTION,
    INVOCATIONS_PER_INSTANCE,
    MODELHOST_DEFAULTS,
    SAGEMAKER_SETTINGS,
    MetricKind,
    ScalingSettings,
    Step,
    StepScalingPolicy,
    TargetTrackingPolicy,
    metric_kind_of,
)

NOW = 10_000.0
SETTINGS = ScalingSettings()  # 10 s data, AlarmHigh 3 points, AlarmLow 30 points, idle 300 s
HIGH = "TargetTracking-endpoint/e/variant/v-AlarmHigh-1"
LOW = "TargetTracking-endpoint/e/variant/v-AlarmLow-1"
# 60 invocations per instance per minute = 10 per 10 s period
POLICY = TargetTrackingPolicy("P", target_value=60.0, alarm_high=HIGH, alarm_low=LOW)


def series(*values: float | None, through: float = NOW) -> MetricSeries:
    """Samples for the newest periods before `through`, oldest first; None leaves a period without a sample."""
    n = len(values)
    samples = tuple((through - 10.0 * (n - i), v) for i, v in enumerate(values) if v is not None)
    return MetricSeries(samples, through)


def cap(desired: int, in_service: int | None = None, lo: int = 1, hi: int = 10) -> Capacity:
    return Capacity(desired, desired if in_service is None else in_service, lo, hi)


LOW_30 = [3.0] * 30  # 18 per minute, under 0.9 × 60
AT_27 = [10.0] * 27  # at the target: neither alarm


# ---------------------------------------------------------------- target tracking


@pytest.mark.parametrize(
    ("case", "capacity", "history", "data", "policy", "want"),
    [
        # scale-out on crossing: 3 points of 12 (72/min) on 2 instances -> ceil(2 × 72 / 60) = 3
        ("crossing", cap(2), History(), series(*[5.0] * 27, 12, 12, 12), POLICY, 3),
        ("two of three points high", cap(2), History(), series(*AT_27, 5, 12, 12), POLICY, None),
        ("at the target is not above it", cap(2), History(), series(*AT_27, 10, 10, 10), POLICY, None),
        ("mean of the window", cap(2), History(), series(11, 20, 14), POLICY, 3),  # 15 -> 90/min: 2 × 90 / 60
        ("bounded by max", cap(2, hi=5), History(), series(60, 60, 60), POLICY, 5),
        ("already at max", cap(5, hi=5), History(), series(60, 60, 60), POLICY, None),
        # counted per instance in service: 2 serving, 2 starting; 2 × 72 / 60 -> 3 <= 4 desired
        ("starting instances count", cap(4, 2), History(), series(12, 12, 12), POLICY, None),
        ("none serving yet: divided by 1", cap(1, 0), History(), series(30, 30, 30), POLICY, 3),
        # ScaleOutCooldown: a larger scale-out still happens, the added capacity counts
        ("cooldown, not larger", cap(4, 2), History(NOW - 10, 2), series(20, 20, 20), POLICY, None),  # needs 4
        ("cooldown, larger still", cap(4, 2), History(NOW - 10, 2), series(30, 30, 30), POLICY, 6),
        ("scale-out in ScaleInCooldown", cap(2), History(last_scale_in_s=NOW - 5), series(12, 12, 12), POLICY, 3),
        # sustained low, judged on 1-minute means: 5 minutes at 18/min on 4 instances -> ceil(4 × 18 / 60) = 2
        ("sustained low", cap(4), History(), series(*LOW_30), POLICY, 2),
        ("low, scale-in by the busiest minute", cap(4), History(), series(*LOW_30[:24], *[7.0] * 6), POLICY, 3),
        ("low for 4 minutes only", cap(4), History(), series(*[20.0] * 6, *[3.0] * 24), POLICY, None),
        ("one minute at 0.9 × target", cap(4), History(), series(*LOW_30[:24], *[9.0] * 6), POLICY, None),
        ("one busy 10 s point in a low minute", cap(4), History(), series(*LOW_30[:29], 9.0), POLICY, 2),
        ("DisableScaleIn", cap(4), History(), series(*LOW_30), replace(POLICY, disable_scale_in=True), None),
        ("ScaleInCooldown", cap(4), History(last_scale_in_s=NOW - 299), series(*LOW_30), POLICY, None),
        ("ScaleInCooldown over", cap(4), History(last_scale_in_s=NOW - 300), series(*LOW_30), POLICY, 2),
        (
            "policy's ScaleInCooldown",
            cap(4),
            History(last_scale_in_s=NOW - 299),
            series(*LOW_30),
            replace(POLICY, scale_in_cooldown_s=60),
            2,
        ),
        ("scale-in after a scale-out", cap(4), History(NOW - 5, 2), series(*LOW_30), POLICY, 2),
        ("bounded by min", cap(4, lo=3), History(), series(*LOW_30), POLICY, 3),
        ("never to 0 by tracking", cap(2, lo=0), History(), series(*[0.0] * 30), POLICY, 1),
        # counts: a period without a sample counted 0 (CloudWatch writes none), once the window has one
        ("sparse counts", cap(3), History(), series(*[None] * 29, 3.0), POLICY, 1),
        ("no data", cap(3), History(), series(), POLICY, None),
        ("no data in the window", cap(3), History(), MetricSeries(((NOW - 900, 50.0),), NOW), POLICY, None),
        ("stale series", cap(3), History(), series(60, 60, 60, through=NOW - 40), POLICY, None),
        ("at zero: a request wakes it", cap(0, lo=0), History(), series(60, 60, 60), POLICY, None),
    ],
)
def test_target_tracking(case: str, capacity: Capacity, history: History, data: MetricSeries,
                         policy: TargetTrackingPolicy, want: int | None) -> None:  # fmt: skip
    decision = decide_target_tracking(policy, SETTINGS, capacity, history, data, NOW)
    assert decision.desired == want, (case, decision)


def test_scale_out_cause_and_description_in_aws_words() -> None:
    decision = decide_target_tracking(POLICY, SETTINGS, cap(2), History(), series(12, 12, 12), NOW)
    assert decision == Decision(3, f"monitor alarm {HIGH} in state ALARM triggered policy P",
                                "Setting desired instance count to 3.")  # fmt: skip


def test_scale_in_cites_alarm_low() -> None:
    decision = decide_target_tracking(POLICY, SETTINGS, cap(4), History(), series(*LOW_30), NOW)
    assert decision.cause == f"monitor alarm {LOW} in state ALARM triggered policy P"
    assert decision.description == "Setting desired instance count to 2."


def test_no_change_says_why() -> None:
    assert decide_target_tracking(POLICY, SETTINGS, cap(3), History(), series(), NOW).cause == "no data"
    blocked = decide_target_tracking(POLICY, SETTINGS, cap(4), History(last_scale_in_s=NOW - 10), series(*LOW_30), NOW)
    assert "ScaleInCooldown" in blocked.cause and blocked.description == ""


def test_whole_ratios_do_not_round_up() -> None:
    # 0.1 per 10 s is 0.6000000000000001 per minute; 1 × that / 0.2 is 3.0000000000000004: 3, not 4
    policy = replace(POLICY, target_value=0.2)
    decision = decide_target_tracking(policy, SETTINGS, cap(1), History(), series(0.1, 0.1, 0.1), NOW)
    assert decision.desired == 3


def test_gauge_metric_compared_as_it_is_and_missing_period_is_no_data() -> None:
    gauge = replace(POLICY, target_value=1.0, metric_kind=MetricKind.GAUGE)
    assert decide_target_tracking(gauge, SETTINGS, cap(1), History(), series(3, 3, 3), NOW).desired == 3
    assert decide_target_tracking(gauge, SETTINGS, cap(1), History(), series(3, None, 3), NOW).desired is None
    low = series(*[0.2] * 29, None)
    assert decide_target_tracking(gauge, SETTINGS, cap(3), History(), low, NOW).desired is None


def test_the_evaluation_period_is_a_setting() -> None:
    fast = replace(SETTINGS, evaluation_s=10.0)
    data = series(*AT_27, 5, 5, 12)
    assert decide_target_tracking(POLICY, fast, cap(2), History(), data, NOW).desired == 3
    assert decide_target_tracking(POLICY, SETTINGS, cap(2), History(), data, NOW).desired is None


def test_sagemaker_settings_need_three_minutes_of_one_minute_data() -> None:
    minute = [(NOW - 60.0 * (3 - i), 72.0) for i in range(3)]  # 1-minute sums of 72 on 2 instances
    decision = decide_target_tracking(POLICY, SAGEMAKER_SETTINGS, cap(2), History(), MetricSeries(tuple(minute), NOW),
                                      NOW)  # fmt: skip
    assert decision.desired == 3
    two = MetricSeries(tuple(minute[1:]), NOW)
    assert decide_target_tracking(POLICY, SAGEMAKER_SETTINGS, cap(2), History(), two, NOW).desired is None


def test_period_values_per_minute_and_alignment() -> None:
    # flushed through the middle of a period: the newest whole one is the last to count
    data = MetricSeries(((NOW - 20, 1.0), (NOW - 10, 2.0), (NOW, 3.0)), through_s=NOW + 5)
    assert period_values(data, SETTINGS, MetricKind.COUNT_PER_MINUTE, 2, NOW + 5) == [6.0, 12.0]
    assert period_values(series(1.0, None, 3.0), SETTINGS, MetricKind.COUNT_PER_MINUTE, 3, NOW) == [6.0, 0.0, 18.0]


@pytest.mark.parametrize(
    ("predefined", "statistic", "kind"),
    [
        (INVOCATIONS_PER_INSTANCE, None, MetricKind.COUNT_PER_MINUTE),
        (CONCURRENT_REQUESTS_HIGH_RESOLUTION, None, MetricKind.GAUGE),
        (None, "Sum", MetricKind.COUNT_PER_MINUTE),
        (None, "Average", MetricKind.GAUGE),
    ],
)
def test_metric_kind(predefined: str | None, statistic: str | None, kind: MetricKind) -> None:
    assert metric_kind_of(predefined, statistic) is kind


# ---------------------------------------------------------------- the idle rule: scale to zero, wake at once


@pytest.mark.parametrize(
    ("case", "capacity", "traffic", "settings", "disable_scale_in", "want"),
    [
        ("idle for the idle period", cap(1, lo=0), Traffic(NOW - 300), SETTINGS, False, 0),
        ("idle from 3 instances", cap(3, lo=0), Traffic(NOW - 400), SETTINGS, False, 0),
        ("idle not long enough", cap(1, lo=0), Traffic(NOW - 299), SETTINGS, False, None),
        ("at MinCapacity 1", cap(1, lo=1), Traffic(NOW - 3600), SETTINGS, False, None),
        ("idle down to MinCapacity 2", cap(5, lo=2), Traffic(NOW - 300), SETTINGS, False, 2),
        ("DisableScaleIn", cap(1, lo=0), Traffic(NOW - 3600), SETTINGS, True, None),
        ("busy", cap(1, lo=0), Traffic(None), SETTINGS, False, None),
        ("a request waits", cap(1, lo=0), Traffic(NOW - 3600, request_waiting=True), SETTINGS, False, None),
        ("SageMaker: no scale to zero", cap(1, lo=0), Traffic(NOW - 3600), SAGEMAKER_SETTINGS, False, None),
        ("shorter idle setting", cap(1, lo=0), Traffic(NOW - 60), replace(SETTINGS, idle_s=60), False, 0),
        ("wake at once", cap(0, lo=0), Traffic(NOW - 3600, request_waiting=True), SETTINGS, False, 1),
        ("wake with DisableScaleIn", cap(0, lo=0), Traffic(NOW, request_waiting=True), SETTINGS, True, 1),
        ("at zero, nothing waits", cap(0, lo=0), Traffic(NOW - 3600), SETTINGS, False, None),
        ("MaxCapacity 0", cap(0, lo=0, hi=0), Traffic(NOW, request_waiting=True), SETTINGS, False, None),
    ],
)
def test_idle_rule(case: str, capacity: Capacity, traffic: Traffic, settings: ScalingSettings,
                       disable_scale_in: bool, want: int | None) -> None:  # fmt: skip
    decision = decide_scale_to_zero(settings, capacity, traffic, NOW, disable_scale_in)
    assert decision.desired == want, (case, decision)


def test_wake_then_target_tracking_takes_over() -> None:
    woken = decide_scale_to_zero(SETTINGS, cap(0, lo=0), Traffic(None, request_waiting=True), NOW)
    assert woken == Decision(1, "a request is waiting for the variant at 0 instances",
                             "Setting desired instance count to 1.")  # fmt: skip
    # one instance starting, none serving; the queue's requests count on 1 instance: 180/min at 60 -> 3
    after = decide_target_tracking(POLICY, SETTINGS, cap(1, 0, lo=0), History(NOW, 0), series(30, 30, 30), NOW)
    assert after.desired == 3


# ---------------------------------------------------------------- step scaling

OUT_STEPS = (Step(1, 0.0, 10.0), Step(2, 10.0, 20.0), Step(3, 20.0, None))
IN_STEPS = (Step(-2, None, -10.0), Step(-1, -10.0, 0.0))
BREACH_AT = 50.0


def step_policy(kind: str = "ChangeInCapacity", steps: tuple[Step, ...] = OUT_STEPS, **kw: object) -> StepScalingPolicy:
    return StepScalingPolicy("S", kind, steps, **kw)  # type: ignore[arg-type]


def alarm(*values: float) -> AlarmBreach:
    return AlarmBreach("high-latency", BREACH_AT, values)


@pytest.mark.parametrize(
    ("metric", "steps", "adjustment"),
    [
        (50.0, OUT_STEPS, 1),  # at the threshold: lower bound inclusive
        (59.9, OUT_STEPS, 1),
        (60.0, OUT_STEPS, 2),  # above: upper bound exclusive
        (75.0, OUT_STEPS, 3),
        (1e9, OUT_STEPS, 3),
        (49.0, OUT_STEPS, None),  # no step covers it
        (45.0, IN_STEPS, -1),
        (50.0, IN_STEPS, -1),  # at the threshold, below-side steps: upper bound inclusive
        (40.0, IN_STEPS, -2),  # below: lower bound exclusive, so -10 belongs to (None, -10]
        (39.0, IN_STEPS, -2),
        (51.0, IN_STEPS, None),
    ],
)
def test_step_bounds(metric: float, steps: tuple[Step, ...], adjustment: int | None) -> None:
    step = find_step(steps, metric - BREACH_AT)
    assert (None if step is None else step.scaling_adjustment) == adjustment


@pytest.mark.parametrize(
    ("kind", "capacity", "adjustment", "magnitude", "want"),
    [
        ("ChangeInCapacity", 4, 2, None, 6),
        ("ChangeInCapacity", 4, -3, None, 1),
        ("ExactCapacity", 4, 7, None, 7),
        ("ExactCapacity", 4, 1, None, 1),
        ("PercentChangeInCapacity", 10, 25, None, 12),  # 2.5 -> 2 (above 1: down)
        ("PercentChangeInCapacity", 4, 25, None, 5),  # 1.0 -> 1
        ("PercentChangeInCapacity", 3, 10, None, 4),  # 0.3 -> 1 (between 0 and 1)
        ("PercentChangeInCapacity", 10, -5, None, 9),  # -0.5 -> -1 (between -1 and 0)
        ("PercentChangeInCapacity", 3, -50, None, 2),  # -1.5 -> -1 (below -1: up)
        ("PercentChangeInCapacity", 15, -33, None, 11),  # -4.95 -> -4
        ("PercentChangeInCapacity", 7, 100, None, 14),
        ("PercentChangeInCapacity", 4, 25, 2, 6),  # AWS's example: 25 % of 4 is 1, MinAdjustmentMagnitude 2
        ("PercentChangeInCapacity", 10, -10, 3, 7),  # -1 raised to -3
        ("PercentChangeInCapacity", 10, 50, 2, 15),  # 5 is already more than 2
        ("PercentChangeInCapacity", 0, 50, 1, 1),  # nothing to take a share of: the magnitude
    ],
)
def test_step_adjustment_types(kind: str, capacity: int, adjustment: int, magnitude: int | None, want: int) -> None:
    policy = step_policy(kind, min_adjustment_magnitude=magnitude)
    assert step_change(policy, capacity, Step(adjustment, 0.0, None)) == want


@pytest.mark.parametrize(
    ("case", "policy", "capacity", "history", "breach", "want"),
    [
        ("+2 step", step_policy(), cap(4), History(), alarm(65.0), 6),
        ("bounded by max", step_policy(), cap(9), History(), alarm(80.0), 10),
        ("at max", step_policy(), cap(10), History(), alarm(80.0), None),
        ("bounded by min", step_policy(steps=IN_STEPS), cap(2), History(), alarm(10.0), 1),
        ("to zero with MinCapacity 0", step_policy(steps=IN_STEPS), cap(1, lo=0), History(), alarm(45.0), 0),
        ("from zero", step_policy(), cap(0, lo=0), History(), alarm(55.0), 1),
        ("exact, bounded", step_policy("ExactCapacity", (Step(12, 0.0, None),)), cap(3), History(), alarm(60), 10),
        ("no step covers", step_policy(), cap(4), History(), alarm(40.0), None),
        ("no data", step_policy(), cap(4), History(), alarm(), None),
        ("Average", step_policy(aggregation="Average"), cap(4), History(), alarm(40, 60, 80), 6),
        ("Maximum", step_policy(aggregation="Maximum"), cap(4), History(), alarm(40, 60, 80), 7),
        ("Minimum", step_policy(aggregation="Minimum"), cap(4), History(), alarm(40, 60, 80), None),
        # Cooldown after a scale-out from 4 to 6: a +3 step adds 1 (the 2 added count), a +2 step nothing
        ("cooldown, larger step", step_policy(), cap(6), History(NOW - 100, 4), alarm(75.0), 7),
        ("cooldown, same step", step_policy(), cap(6), History(NOW - 100, 4), alarm(65.0), None),
        ("cooldown over", step_policy(), cap(6), History(NOW - 300, 4), alarm(65.0), 8),
        ("policy's cooldown", step_policy(cooldown_s=60), cap(6), History(NOW - 100, 4), alarm(65.0), 8),
        ("in cooldown", step_policy(steps=IN_STEPS), cap(4), History(last_scale_in_s=NOW - 9), alarm(45), None),
        ("scale-in after it", step_policy(steps=IN_STEPS), cap(4), History(last_scale_in_s=NOW - 300), alarm(45), 3),
        ("scale-out in scale-in cooldown", step_policy(), cap(4), History(last_scale_in_s=NOW - 10), alarm(55.0), 5),
    ],
)
def test_step_scaling(case: str, policy: StepScalingPolicy, capacity: Capacity, history: History,
                      breach: AlarmBreach, want: int | None) -> None:  # fmt: skip
    decision = decide_step_scaling(policy, SETTINGS, capacity, history, breach, NOW)
    assert decision.desired == want, (case, decision)


def test_step_cause_in_aws_words() -> None:
    decision = decide_step_scaling(step_policy(), SETTINGS, cap(4), History(), alarm(65.0), NOW)
    assert decision == Decision(6, "monitor alarm high-latency in state ALARM triggered policy S",
                                "Setting desired instance count to 6.")  # fmt: skip


# ---------------------------------------------------------------- several policies


@pytest.mark.parametrize(
    ("decisions", "want"),
    [
        ((Decision(5, "a"), Decision(7, "b"), Decision(None, "c")), 7),  # the largest scale-out
        ((Decision(2, "a"), Decision(3, "b")), 3),  # every policy scales in: the largest count
        ((Decision(2, "a"), Decision(None, "b")), None),  # one policy holds: no scale-in
        ((Decision(2, "a"), Decision(6, "b")), 6),
        ((), None),
    ],
)
def test_combine(decisions: tuple[Decision, ...], want: int | None) -> None:
    assert combine(4, decisions).desired == want


def test_defaults_are_faster_than_sagemakers() -> None:
    ours, theirs = MODELHOST_DEFAULTS, SAGEMAKER_SETTINGS
    assert ours.scale_out_points * ours.resolution_s < theirs.scale_out_points * theirs.resolution_s
    assert ours.scale_in_points * ours.resolution_s < theirs.scale_in_points * theirs.resolution_s
    assert (ours.scale_out_points, theirs.scale_out_points, theirs.scale_in_points) == (3, 3, 15)
