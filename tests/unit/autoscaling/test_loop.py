"""The scaling loop over a real store and metric store with a fixed clock: target tracking scales out from
the 10 s data and records the activity; the capacity bounds pull a desired count inside them; a scheduled
action that came due raises MinCapacity and the desired count with it; SuspendedState blocks scale-out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from modelhost.autoscaling import scaling_store
from modelhost.autoscaling.loop import ScalingLoop
from modelhost.autoscaling.naming import VariantRef, member_key
from modelhost.autoscaling.policies import ScalingSettings
from modelhost.autoscaling.records import (
    CapacityBounds,
    PolicyType,
    PredefinedMetric,
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
    Suspension,
    TargetTracking,
)
from modelhost.monitoring.datapoints import Datapoint, MetricIdentity, StatisticSet, dimensions_of
from modelhost.monitoring.metric_store import SqliteMetricStore
from modelhost.resources.status import EndpointStatus
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore
from tests.fakes.clock import FakeClock
from tests.fakes.records import endpoint

REF = VariantRef("ep", "AllTraffic")
NOW = 1_800_000_000.0  # a multiple of 10
DIMS = dimensions_of((("EndpointName", "ep"), ("VariantName", "AllTraffic")))


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    store = SqliteStore(tmp_path / "modelhost.db")
    store.open()
    records = Records(store)
    records.endpoints.insert("ep", endpoint("ep", status=EndpointStatus.IN_SERVICE))
    yield records
    store.close()


@pytest.fixture
def metrics(tmp_path: Path) -> Iterator[SqliteMetricStore]:
    store = SqliteMetricStore(tmp_path / "metrics.db")
    yield store
    store.close()


def target(low: int = 1, high: int = 4, suspended: Suspension | None = None) -> ScalableTarget:
    return ScalableTarget("ep", "AllTraffic", REF.resource_id, low, high, "role", "arn:t", 1.0, "us-east-1",
                          suspended or Suspension())  # fmt: skip


def tracking(target_value: float = 60.0) -> ScalingPolicy:
    config = TargetTracking(target_value, predefined=PredefinedMetric("SageMakerVariantInvocationsPerInstance"),
                            scale_out_cooldown_s=0, scale_in_cooldown_s=0)  # fmt: skip
    return ScalingPolicy("p", "arn:p", "ep", "AllTraffic", REF.resource_id, PolicyType.TARGET_TRACKING, 2.0,
                         target_tracking=config)  # fmt: skip


def busy(metrics: SqliteMetricStore, per_10s: float, periods: int = 6) -> None:
    """`per_10s` invocations per instance in each of the last `periods` 10 s periods."""
    points = []
    for i in range(1, periods + 1):
        at = NOW - 10 * i
        for name in ("InvocationsPerInstance", "Invocations"):
            identity = MetricIdentity("AWS/SageMaker", name, DIMS)
            points.append(Datapoint(identity, "None", at, StatisticSet(per_10s, per_10s, 1.0, 1.0), True))
    metrics.add(points)


def loop(records: Records, metrics: SqliteMetricStore, woken: list[int]) -> ScalingLoop:
    settings = ScalingSettings(evaluation_s=10.0, scale_in_points=3, idle_s=600.0)
    return ScalingLoop(records, metrics, settings, FakeClock(NOW), lambda: woken.append(1),
                       lambda: NOW)  # fmt: skip


def desired(records: Records) -> int:
    found = records.endpoints.get("ep")
    assert found is not None
    state = found.state("AllTraffic")
    assert state is not None
    return state.desired_count


def test_target_tracking_scales_out_from_the_metric_and_records_why(
    records: Records, metrics: SqliteMetricStore
) -> None:
    records.scalable_targets.put(REF.key, target())
    records.scaling_policies.put(member_key(REF, "p"), tracking())
    busy(metrics, 30.0)  # 180 per instance per minute against a target of 60: three instances
    woken: list[int] = []
    applied = loop(records, metrics, woken).tick()
    assert [(a.variant, a.desired) for a in applied] == [("AllTraffic", 3)]
    assert desired(records) == 3 and woken
    activity = scaling_store.activities(records)[0]
    assert activity.description == "Setting desired instance count to 3." and "triggered policy p" in activity.cause


def test_the_bounds_pull_the_desired_count_inside(records: Records, metrics: SqliteMetricStore) -> None:
    records.scalable_targets.put(REF.key, target(low=2, high=4))
    assert [a.desired for a in loop(records, metrics, []).tick()] == [2]
    assert "outside the scalable target's bounds" in scaling_store.activities(records)[0].cause


def test_a_scheduled_action_that_came_due_sets_the_bounds(records: Records, metrics: SqliteMetricStore) -> None:
    records.scalable_targets.put(REF.key, target(low=1, high=4))
    due = ScheduledAction("morning", "arn:a", "ep", "AllTraffic", REF.resource_id, "rate(1 minute)", NOW - 600,
                          CapacityBounds(min_capacity=3))  # fmt: skip
    records.scheduled_actions.put(member_key(REF, "morning"), due)
    scaler = loop(records, metrics, [])
    scaler.tick()  # the first tick only notes the time
    clock = scaler._clock
    assert isinstance(clock, FakeClock)
    clock.advance(61)
    scaler.tick()
    updated = records.scalable_targets.get(REF.key)
    assert updated is not None and updated.min_capacity == 3
    scaler.tick()
    assert desired(records) == 3  # the bounds rule followed the new MinCapacity


def test_suspended_scale_out_holds(records: Records, metrics: SqliteMetricStore) -> None:
    records.scalable_targets.put(REF.key, replace(target(), suspended=Suspension(dynamic_scaling_out=True)))
    records.scaling_policies.put(member_key(REF, "p"), tracking())
    busy(metrics, 30.0)
    assert loop(records, metrics, []).tick() == []
    assert desired(records) == 1
