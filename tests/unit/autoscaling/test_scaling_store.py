"""The scaling records in a real SQLite store: round trips, scaling_state, activities, removal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.autoscaling import scaling_store
from modelhost.autoscaling.naming import VariantRef, member_key
from modelhost.autoscaling.records import (
    ActivityStatus,
    AdjustmentType,
    Alarm,
    CapacityBounds,
    CustomizedMetric,
    Dimension,
    MetricQuery,
    MetricStat,
    PolicyType,
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
    StepAdjustment,
    StepScaling,
    Suspension,
    TargetTracking,
)
from modelhost.resources.status import EndpointStatus
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore
from tests.fakes.records import endpoint

REF = VariantRef("ep", "AllTraffic")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "modelhost.db"


@pytest.fixture
def records(db: Path) -> Iterator[Records]:
    store = SqliteStore(db)
    store.open()
    records = Records(store)
    records.endpoints.insert("ep", endpoint("ep", status=EndpointStatus.IN_SERVICE))
    yield records
    store.close()


def target(ref: VariantRef = REF, created: float = 1.0) -> ScalableTarget:
    return ScalableTarget(ref.endpoint_name, ref.variant_name, ref.resource_id, 0, 3, "role", "arn:t", created,
                          "us-east-1", Suspension(dynamic_scaling_in=True), tags={"team": "ml"})  # fmt: skip


def tracking_policy(name: str = "p1", ref: VariantRef = REF) -> ScalingPolicy:
    customized = CustomizedMetric(queries=(
        MetricQuery("m1", metric_stat=MetricStat("Sum", "AWS/SageMaker", "Invocations", (Dimension("E", "ep"),)),
                    return_data=False),
        MetricQuery("e1", expression="m1/60"),
    ))  # fmt: skip
    config = TargetTracking(2.5, customized=customized, scale_in_cooldown_s=30, disable_scale_in=True)
    alarms = (Alarm("a", "arn:a"),)
    return ScalingPolicy(name, "arn:p", ref.endpoint_name, ref.variant_name, ref.resource_id,
                         PolicyType.TARGET_TRACKING, 2.0, target_tracking=config, alarms=alarms)  # fmt: skip


def step_policy(name: str = "s1") -> ScalingPolicy:
    adjustments = (StepAdjustment(10, 0.0, 5.0), StepAdjustment(50, 5.0, None))
    steps = StepScaling(AdjustmentType.PERCENT_CHANGE_IN_CAPACITY, adjustments, min_adjustment_magnitude=1)
    return ScalingPolicy(name, "arn:s", "ep", "AllTraffic", REF.resource_id, PolicyType.STEP_SCALING, 3.0,
                         step_scaling=steps)  # fmt: skip


def action(name: str = "a1") -> ScheduledAction:
    return ScheduledAction(name, "arn:a", "ep", "AllTraffic", REF.resource_id, "rate(1 day)", 4.0,
                           CapacityBounds(min_capacity=0), "Europe/Paris", 10.0, 20.0)  # fmt: skip


def fill(records: Records) -> None:
    records.scalable_targets.put(REF.key, target())
    for policy in (tracking_policy(), step_policy()):
        records.scaling_policies.put(member_key(REF, policy.name), policy)
    records.scheduled_actions.put(member_key(REF, "a1"), action())


def test_records_round_trip_through_a_reopened_store(records: Records, db: Path) -> None:
    fill(records)
    records.store.close()
    store = SqliteStore(db)
    store.open()
    try:
        again = Records(store)
        assert again.scalable_targets.get(REF.key) == target()
        assert again.scaling_policies.get(member_key(REF, "p1")) == tracking_policy()
        assert again.scaling_policies.get(member_key(REF, "s1")) == step_policy()
        assert again.scheduled_actions.get(member_key(REF, "a1")) == action()
        assert again.problems.lines() == []
    finally:
        store.close()
    records.store.open()


def test_scaling_state_groups_by_target_and_skips_endpoints_going_away(records: Records) -> None:
    fill(records)
    other = VariantRef("gone", "v")
    records.scalable_targets.put(other.key, target(other, created=0.5))
    records.scaling_policies.put(member_key(other, "p1"), tracking_policy("p1", other))
    [(found, policies, actions)] = scaling_store.scaling_state(records)
    assert found == target() and [p.name for p in policies] == ["p1", "s1"] and actions == [action()]
    records.endpoints.update("ep", lambda e: e.mark_deleting(5.0))
    assert scaling_store.scaling_state(records) == []


def test_activities_are_recorded_finished_listed_newest_first_and_pruned(
    records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = scaling_store.record_activity(records, resource_id=REF.resource_id, description="d1", cause="c", now=100.0)
    assert (first.status, first.end) == (ActivityStatus.IN_PROGRESS, None)
    done = scaling_store.finish_activity(records, first.activity_id, status=ActivityStatus.SUCCESSFUL, now=130.0)
    assert done is not None and (done.status, done.end) == (ActivityStatus.SUCCESSFUL, 130.0)
    failed = scaling_store.record_activity(
        records, resource_id=REF.resource_id, description="d2", cause="c", now=200.0, status=ActivityStatus.FAILED
    )
    assert failed.end == 200.0
    assert [a.description for a in scaling_store.activities(records)] == ["d2", "d1"]
    monkeypatch.setattr(scaling_store, "ACTIVITIES_KEPT_PER_TARGET", 2)
    scaling_store.record_activity(records, resource_id=REF.resource_id, description="d3", cause="c", now=300.0)
    assert [a.description for a in scaling_store.activities(records)] == ["d3", "d2"]
    later = 300.0 + scaling_store.ACTIVITY_RETENTION_S + 1
    scaling_store.record_activity(records, resource_id=REF.resource_id, description="d4", cause="c", now=later)
    assert [a.description for a in scaling_store.activities(records)] == ["d4"]
    with pytest.raises(ValueError):
        scaling_store.record_activity(records, resource_id="service/x/y", description="d", cause="c", now=1.0)


def test_removal_with_the_endpoint_takes_everything_of_its_targets(records: Records) -> None:
    fill(records)
    scaling_store.record_activity(records, resource_id=REF.resource_id, description="d", cause="c", now=1.0)
    other = VariantRef("kept", "v")
    records.scalable_targets.put(other.key, target(other))
    assert scaling_store.remove_endpoint_scaling(records, "EP") == 1
    assert [t.endpoint_name for t in records.scalable_targets.list()] == ["kept"]
    assert records.scaling_policies.list() == [] and records.scheduled_actions.list() == []
    assert records.scaling_activities.list() == []
