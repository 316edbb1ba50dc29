"""The scaling records in the store: reads the scaling loop uses (`scaling_state`), the activity log it writes
(`record_activity`, `finish_activity`), and removal with a target or an endpoint.

Every function takes the server's `Records`; the tables are `records.scalable_targets`, `.scaling_policies`,
`.scheduled_actions` and `.scaling_activities`. Calls are short SQLite work: run them off the event loop.
"""

from __future__ import annotations

import dataclasses
import logging

from modelhost.autoscaling.naming import VariantRef, activity_id, member_key, parse_resource_id
from modelhost.autoscaling.records import (
    ActivityStatus,
    NotScaledReason,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
)
from modelhost.resources.status import EndpointStatus
from modelhost.store.records import Records

log = logging.getLogger(__name__)

ACTIVITY_RETENTION_S = 6 * 7 * 86400.0  # AWS keeps six weeks of scaling activities
ACTIVITIES_KEPT_PER_TARGET = 500  # and modelhost at most this many per target, newest first

ScalingState = list[tuple[ScalableTarget, list[ScalingPolicy], list[ScheduledAction]]]


def ref_of(record: ScalableTarget | ScalingPolicy | ScheduledAction | ScalingActivity) -> VariantRef:
    return VariantRef(record.endpoint_name, record.variant_name)


def get_target(records: Records, ref: VariantRef) -> ScalableTarget | None:
    return records.scalable_targets.get(ref.key)


def targets(records: Records) -> list[ScalableTarget]:
    """Every readable target, oldest first."""
    return sorted(records.scalable_targets.list(), key=lambda t: (t.created, ref_of(t).key))


def policies_of(records: Records, ref: VariantRef) -> list[ScalingPolicy]:
    found = [p for p in records.scaling_policies.list() if ref_of(p).key == ref.key]
    return sorted(found, key=lambda p: (p.created, p.name))


def actions_of(records: Records, ref: VariantRef) -> list[ScheduledAction]:
    found = [a for a in records.scheduled_actions.list() if ref_of(a).key == ref.key]
    return sorted(found, key=lambda a: (a.created, a.name))


def scaling_state(records: Records) -> ScalingState:
    """Every registered target with its policies and scheduled actions, for the scaling loop. Targets whose
    endpoint is gone or being deleted are left out (their records go with the endpoint)."""
    live = {e.key for e in records.endpoints.list() if e.status != EndpointStatus.DELETING}
    policies = records.scaling_policies.list()
    actions = records.scheduled_actions.list()
    state: ScalingState = []
    for target in targets(records):
        if target.endpoint_name.lower() not in live:
            continue
        key = ref_of(target).key
        own_policies = sorted((p for p in policies if ref_of(p).key == key), key=lambda p: (p.created, p.name))
        own_actions = sorted((a for a in actions if ref_of(a).key == key), key=lambda a: (a.created, a.name))
        state.append((target, own_policies, own_actions))
    return state


def delete_target(records: Records, ref: VariantRef) -> bool:
    """Removes the target with its policies, scheduled actions and activities (DeregisterScalableTarget)."""
    for policy in policies_of(records, ref):
        records.scaling_policies.delete(member_key(ref, policy.name))
    for action in actions_of(records, ref):
        records.scheduled_actions.delete(member_key(ref, action.name))
    for activity in records.scaling_activities.list():
        if ref_of(activity).key == ref.key:
            records.scaling_activities.delete(activity.activity_id)
    return records.scalable_targets.delete(ref.key)


def remove_endpoint_scaling(records: Records, endpoint_name: str) -> int:
    """Removes every target of the endpoint (as `delete_target`); returns how many there were."""
    refs = {ref_of(t).key: ref_of(t) for t in records.scalable_targets.list()}
    refs.update({ref_of(p).key: ref_of(p) for p in records.scaling_policies.list()})
    refs.update({ref_of(a).key: ref_of(a) for a in records.scheduled_actions.list()})
    removed = 0
    for ref in refs.values():
        if ref.endpoint_name.lower() == endpoint_name.lower():
            removed += int(delete_target(records, ref))
    if removed:
        log.info("endpoint %s: %d scalable target(s) removed with it", endpoint_name, removed)
    return removed


def record_activity(
    records: Records,
    *,
    resource_id: str,
    description: str,
    cause: str,
    now: float,
    status: ActivityStatus = ActivityStatus.IN_PROGRESS,
    status_message: str | None = None,
    details: str | None = None,
    not_scaled_reasons: tuple[NotScaledReason, ...] = (),
    end: float | None = None,
) -> ScalingActivity:
    """Stores one scaling activity of the target `resource_id` (`endpoint/NAME/variant/VARIANT`) and returns it;
    `description` says what is done ("Setting desired instance count to 2."), `cause` why ("monitor alarm
    TargetTracking-...-AlarmHigh-... in state ALARM triggered policy p1"). An activity that is finished when
    recorded (Successful, Failed, or a decision not to scale) gets `end` = `now` unless given. Old activities
    beyond six weeks, or beyond the newest 500 of the target, are dropped. ValueError for a malformed id."""
    ref = parse_resource_id(resource_id)
    if ref is None:
        raise ValueError(f"not a SageMaker variant resource id: {resource_id!r}")
    finished = status not in (ActivityStatus.PENDING, ActivityStatus.IN_PROGRESS)
    activity = ScalingActivity(
        activity_id=activity_id(),
        endpoint_name=ref.endpoint_name,
        variant_name=ref.variant_name,
        resource_id=resource_id,
        description=description,
        cause=cause,
        start=now,
        status=status,
        end=end if end is not None or not finished else now,
        status_message=status_message,
        details=details,
        not_scaled_reasons=not_scaled_reasons,
    )
    records.scaling_activities.put(activity.activity_id, activity)
    _prune_activities(records, ref, now)
    return activity


def finish_activity(
    records: Records,
    activity_id_: str,
    *,
    status: ActivityStatus,
    now: float,
    status_message: str | None = None,
) -> ScalingActivity | None:
    """Sets an activity's outcome (Successful, Failed, ...) and end time; None when there is no such activity."""

    def finish(activity: ScalingActivity) -> ScalingActivity:
        return dataclasses.replace(activity, status=status, end=now, status_message=status_message)

    return records.scaling_activities.update(activity_id_, finish)


def activities(records: Records) -> list[ScalingActivity]:
    """Every readable activity, newest first (as DescribeScalingActivities lists them)."""
    return sorted(records.scaling_activities.list(), key=lambda a: (-a.start, a.activity_id))


def _prune_activities(records: Records, ref: VariantRef, now: float) -> None:
    own = [a for a in activities(records) if ref_of(a).key == ref.key]
    for index, activity in enumerate(own):
        if index >= ACTIVITIES_KEPT_PER_TARGET or activity.start < now - ACTIVITY_RETENTION_S:
            records.scaling_activities.delete(activity.activity_id)
