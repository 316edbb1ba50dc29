"""The ten Application Auto Scaling operations over the scaling records: (context, valid params) -> response.

Params have passed the service model's checks (api.py); these add AWS's rules and read or write the store.
The API runs them one at a time (a lock), so check-then-write sequences hold against each other; against
DeleteEndpoint, which removes its targets from another place, a write is checked again afterwards and undone
with ConcurrentUpdateException when its endpoint or target went away meanwhile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelhost.autoscaling import naming, requests, scaling_store, shapes
from modelhost.autoscaling.errors import ConcurrentUpdate, FailedResourceAccess, LimitExceeded, ObjectNotFound
from modelhost.autoscaling.naming import VariantRef, member_key
from modelhost.autoscaling.paging import page
from modelhost.autoscaling.records import (
    DIMENSION,
    NAMESPACE,
    Alarm,
    PolicyType,
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
    Suspension,
    TargetTracking,
)
from modelhost.autoscaling.schedules import ScheduleError, parse_schedule, time_zone
from modelhost.errors import ValidationError
from modelhost.resources.status import EndpointStatus
from modelhost.store.errors import UnreadableRecord
from modelhost.store.records import Records

MAX_TARGETS = 3000  # AWS's default quota of scalable targets per resource type
MAX_POLICIES_PER_TARGET = 50
MAX_SCHEDULED_ACTIONS_PER_TARGET = 200


@dataclass(frozen=True, slots=True)
class ScalingContext:
    records: Records
    account_id: str
    region: str  # the caller's (ARNs made now carry it)
    now: float


Operation = Callable[[ScalingContext, dict[str, Any]], dict[str, Any]]


def _identity(ref: VariantRef) -> str:
    return f"service namespace: {NAMESPACE}, resource ID: {ref.resource_id}, scalable dimension: {DIMENSION}"


def _target_or_fail(ctx: ScalingContext, ref: VariantRef) -> ScalableTarget:
    target: ScalableTarget | None = _read(lambda: scaling_store.get_target(ctx.records, ref), "scalable target", ref)
    if target is None:
        raise ObjectNotFound(f"No scalable target registered for {_identity(ref)}")
    return target


def _read(read: Callable[[], Any], what: str, ref: VariantRef) -> Any:
    try:
        return read()
    except UnreadableRecord as exc:
        raise FailedResourceAccess(
            f"The {what} of {ref.resource_id} cannot be read from the store: {exc.reason}"
        ) from exc


def _check_variant(ctx: ScalingContext, ref: VariantRef) -> None:
    """The endpoint and its variant must exist (and the endpoint not be going away)."""
    try:
        endpoint = ctx.records.endpoints.get(ref.endpoint_name)
    except UnreadableRecord as exc:
        raise FailedResourceAccess(f"The endpoint {ref.endpoint_name} cannot be read: {exc.reason}") from exc
    if endpoint is None or endpoint.status == EndpointStatus.DELETING:
        raise ValidationError(f"SageMaker endpoint doesn't exist: {ref.resource_id}")
    if ref.variant_name not in {spec.name for spec in endpoint.variants}:
        raise ValidationError(f"SageMaker endpoint variant doesn't exist: {ref.resource_id}")


# scalable targets --------------------------------------------------------------------------------
def register_scalable_target(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    ref = requests.variant_ref(params)
    _check_variant(ctx, ref)
    current = _read(lambda: scaling_store.get_target(ctx.records, ref), "scalable target", ref)
    low, high = requests.capacity(params, None if current is None else (current.min_capacity, current.max_capacity))
    if current is None:
        if len(ctx.records.scalable_targets.list()) >= MAX_TARGETS:
            raise LimitExceeded(
                f"This server holds its limit of {MAX_TARGETS} scalable targets; deregister some first."
            )
        target = ScalableTarget(
            endpoint_name=ref.endpoint_name,
            variant_name=ref.variant_name,
            resource_id=params["ResourceId"],
            min_capacity=low,
            max_capacity=high,
            role_arn=params.get("RoleARN") or naming.service_role_arn(ctx.account_id),
            arn=naming.target_arn(ctx.region, ctx.account_id),
            created=ctx.now,
            region=ctx.region,
            suspended=requests.suspension(params, Suspension()),
            tags=dict(params.get("Tags") or {}),
        )
    else:
        if params.get("Tags"):
            raise ValidationError(
                "The scalable target that you tried to tag already exists. To update tags on an existing scalable "
                "target, use the TagResource API."
            )
        target = dataclasses.replace(
            current,
            min_capacity=low,
            max_capacity=high,
            role_arn=params.get("RoleARN") or current.role_arn,
            suspended=requests.suspension(params, current.suspended),
        )
    ctx.records.scalable_targets.put(ref.key, target)
    try:
        _check_variant(ctx, ref)
    except ValidationError:  # the endpoint was deleted while the target was written
        scaling_store.delete_target(ctx.records, ref)
        raise ConcurrentUpdate(
            f"The endpoint of {ref.resource_id} was deleted while its target was registered."
        ) from None
    return {"ScalableTargetARN": target.arn}


def describe_scalable_targets(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    found: list[ScalableTarget] = []
    if requests.namespace_served(params):
        found = scaling_store.targets(ctx.records)
        if "ResourceIds" in params:
            wanted = {ref.key for ref in map(naming.parse_resource_id, params["ResourceIds"]) if ref is not None}
            found = [t for t in found if scaling_store.ref_of(t).key in wanted]
    items, token = page(found, params)
    return _with_token({"ScalableTargets": [shapes.target_shape(t) for t in items]}, token)


def deregister_scalable_target(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    ref = requests.variant_ref(params)
    if _read(lambda: scaling_store.get_target(ctx.records, ref), "scalable target", ref) is None:
        raise ObjectNotFound(f"No scalable target found for {_identity(ref)}")
    scaling_store.delete_target(ctx.records, ref)
    return {}


# scaling policies --------------------------------------------------------------------------------
def _policy_type(params: dict[str, Any], current: ScalingPolicy | None) -> PolicyType:
    given = params.get("PolicyType")
    if given is None:
        if current is None:
            raise ValidationError("PolicyType is required to create a scaling policy.")
        return current.policy_type
    if given == "PredictiveScaling":
        raise ValidationError("Predictive scaling is not supported for service namespace sagemaker.")
    return PolicyType(given)


def _alarms(
    ctx: ScalingContext, ref: VariantRef, config: TargetTracking, current: ScalingPolicy | None
) -> tuple[Alarm, ...]:
    """AlarmHigh, and AlarmLow unless scale-in is disabled; names kept from the policy's earlier version."""
    kept = {a.name.split("-")[-6]: a for a in current.alarms} if current is not None else {}
    wanted = ["AlarmHigh"] if config.disable_scale_in else ["AlarmHigh", "AlarmLow"]
    alarms = []
    for kind in wanted:
        alarm = kept.get(kind)
        if alarm is None:
            name = naming.alarm_name(ref, kind)
            alarm = Alarm(name, naming.alarm_arn(ctx.region, ctx.account_id, name))
        alarms.append(alarm)
    return tuple(alarms)


def _policy_config(
    ctx: ScalingContext, ref: VariantRef, params: dict[str, Any], kind: PolicyType, current: ScalingPolicy | None
) -> dict[str, Any]:
    """The policy's configuration members: from the request, or kept from the policy of the same type."""
    step_in = params.get("StepScalingPolicyConfiguration")
    tracking_in = params.get("TargetTrackingScalingPolicyConfiguration")
    same_type = current if current is not None and current.policy_type is kind else None
    if kind is PolicyType.TARGET_TRACKING:
        if step_in is not None:
            raise ValidationError("StepScalingPolicyConfiguration does not go with PolicyType TargetTrackingScaling.")
        tracking = same_type.target_tracking if same_type is not None else None
        if tracking_in is not None:
            tracking = requests.target_tracking(tracking_in)
        if tracking is None:
            raise ValidationError(
                "TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy."
            )
        return {"target_tracking": tracking, "step_scaling": None, "alarms": _alarms(ctx, ref, tracking, same_type)}
    if tracking_in is not None:
        raise ValidationError("TargetTrackingScalingPolicyConfiguration does not go with PolicyType StepScaling.")
    step = same_type.step_scaling if same_type is not None else None
    if step_in is not None:
        step = requests.step_scaling(step_in)
    if step is None:
        raise ValidationError("StepScalingPolicyConfiguration is required for a StepScaling policy.")
    return {"step_scaling": step, "target_tracking": None, "alarms": ()}


def put_scaling_policy(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    ref = requests.variant_ref(params)
    _target_or_fail(ctx, ref)
    name = params["PolicyName"]
    key = member_key(ref, name)
    current = _read(lambda: ctx.records.scaling_policies.get(key), "scaling policy", ref)
    kind = _policy_type(params, current)
    config = _policy_config(ctx, ref, params, kind, current)
    if current is None and len(scaling_store.policies_of(ctx.records, ref)) >= MAX_POLICIES_PER_TARGET:
        raise LimitExceeded(
            f"The scalable target {ref.resource_id} already has {MAX_POLICIES_PER_TARGET} scaling policies."
        )
    policy = ScalingPolicy(
        name=name,
        arn=current.arn if current is not None else naming.policy_arn(ctx.region, ctx.account_id, ref, name),
        endpoint_name=ref.endpoint_name,
        variant_name=ref.variant_name,
        resource_id=params["ResourceId"],
        policy_type=kind,
        created=current.created if current is not None else ctx.now,
        **config,
    )
    ctx.records.scaling_policies.put(key, policy)
    _undo_if_target_gone(ctx, ref, lambda: ctx.records.scaling_policies.delete(key))
    answer: dict[str, Any] = {"PolicyARN": policy.arn}
    if kind is PolicyType.TARGET_TRACKING:
        answer["Alarms"] = shapes.alarms_shape(policy)
    return answer


def _undo_if_target_gone(ctx: ScalingContext, ref: VariantRef, undo: Callable[[], object]) -> None:
    if scaling_store.get_target(ctx.records, ref) is None:
        undo()
        raise ConcurrentUpdate(f"The scalable target {ref.resource_id} was removed while this request ran.")


def describe_scaling_policies(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    found: list[ScalingPolicy] = []
    if requests.namespace_served(params):
        found = sorted(ctx.records.scaling_policies.list(), key=lambda p: (p.created, p.name))
        found = [p for p in found if _in_resource(params, scaling_store.ref_of(p))]
        if "PolicyNames" in params:
            found = [p for p in found if p.name in set(params["PolicyNames"])]
    items, token = page(found, params)
    return _with_token({"ScalingPolicies": [shapes.policy_shape(p) for p in items]}, token)


def delete_scaling_policy(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    ref = requests.variant_ref(params)
    if not ctx.records.scaling_policies.delete(member_key(ref, params["PolicyName"])):
        raise ObjectNotFound(f"No scaling policy found for {_identity(ref)}, policy name: {params['PolicyName']}")
    return {}


# scheduled actions -------------------------------------------------------------------------------
def put_scheduled_action(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    ref = requests.variant_ref(params)
    _target_or_fail(ctx, ref)
    name = params["ScheduledActionName"]
    key = member_key(ref, name)
    current = _read(lambda: ctx.records.scheduled_actions.get(key), "scheduled action", ref)
    schedule = params.get("Schedule") or (current.schedule if current is not None else None)
    if schedule is None:
        raise ValidationError("Schedule is required to create a scheduled action.")
    timezone = params.get("Timezone", current.timezone if current is not None else None)
    try:
        parse_schedule(schedule)
        time_zone(timezone)
    except ScheduleError as exc:
        raise ValidationError(str(exc)) from None
    start, end = requests.timestamp(params, "StartTime"), requests.timestamp(params, "EndTime")
    if start is not None and end is not None and start >= end:
        raise ValidationError("The StartTime of a scheduled action must be before its EndTime.")
    bounds = requests.bounds(params, current.bounds if current is not None else None)
    if current is None and len(scaling_store.actions_of(ctx.records, ref)) >= MAX_SCHEDULED_ACTIONS_PER_TARGET:
        raise LimitExceeded(
            f"The scalable target {ref.resource_id} already has {MAX_SCHEDULED_ACTIONS_PER_TARGET} scheduled actions."
        )
    action = ScheduledAction(
        name=name,
        arn=current.arn if current is not None else naming.scheduled_action_arn(ctx.region, ctx.account_id, ref, name),
        endpoint_name=ref.endpoint_name,
        variant_name=ref.variant_name,
        resource_id=params["ResourceId"],
        schedule=schedule,
        created=current.created if current is not None else ctx.now,
        bounds=bounds,
        timezone=timezone,
        start=start,  # an update without StartTime/EndTime clears them, as AWS does
        end=end,
    )
    ctx.records.scheduled_actions.put(key, action)
    _undo_if_target_gone(ctx, ref, lambda: ctx.records.scheduled_actions.delete(key))
    return {}


def describe_scheduled_actions(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    found: list[ScheduledAction] = []
    if requests.namespace_served(params):
        found = sorted(ctx.records.scheduled_actions.list(), key=lambda a: (a.created, a.name))
        found = [a for a in found if _in_resource(params, scaling_store.ref_of(a))]
        if "ScheduledActionNames" in params:
            found = [a for a in found if a.name in set(params["ScheduledActionNames"])]
    items, token = page(found, params)
    return _with_token({"ScheduledActions": [shapes.scheduled_action_shape(a) for a in items]}, token)


def delete_scheduled_action(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    ref = requests.variant_ref(params)
    name = params["ScheduledActionName"]
    if not ctx.records.scheduled_actions.delete(member_key(ref, name)):
        raise ObjectNotFound(f"No scheduled action found for {_identity(ref)}, scheduled action name: {name}")
    return {}


# activities --------------------------------------------------------------------------------------
def describe_scaling_activities(ctx: ScalingContext, params: dict[str, Any]) -> dict[str, Any]:
    found = []
    if requests.namespace_served(params):
        include_not_scaled = bool(params.get("IncludeNotScaledActivities", False))
        found = [
            a
            for a in scaling_store.activities(ctx.records)
            if _in_resource(params, scaling_store.ref_of(a)) and (include_not_scaled or not a.not_scaled_reasons)
        ]
    items, token = page(found, params)
    return _with_token({"ScalingActivities": [shapes.activity_shape(a) for a in items]}, token)


# -------------------------------------------------------------------------------------------------
def _in_resource(params: dict[str, Any], ref: VariantRef) -> bool:
    if "ResourceId" not in params:
        return True
    wanted = naming.parse_resource_id(params["ResourceId"])
    return wanted is not None and wanted.key == ref.key


def _with_token(answer: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:
        answer["NextToken"] = token
    return answer


OPERATIONS: dict[str, Operation] = {
    "RegisterScalableTarget": register_scalable_target,
    "DescribeScalableTargets": describe_scalable_targets,
    "DeregisterScalableTarget": deregister_scalable_target,
    "PutScalingPolicy": put_scaling_policy,
    "DescribeScalingPolicies": describe_scaling_policies,
    "DeleteScalingPolicy": delete_scaling_policy,
    "DescribeScalingActivities": describe_scaling_activities,
    "PutScheduledAction": put_scheduled_action,
    "DescribeScheduledActions": describe_scheduled_actions,
    "DeleteScheduledAction": delete_scheduled_action,
}
