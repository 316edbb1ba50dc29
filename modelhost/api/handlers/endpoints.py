"""CreateEndpoint, DescribeEndpoint, ListEndpoints, DeleteEndpoint, UpdateEndpoint,
UpdateEndpointWeightsAndCapacities: record intent as `Endpoint` transitions; the controller acts."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from modelhost.api import shapes
from modelhost.api.context import ApiContext
from modelhost.api.handlers.endpoint_configs import get_endpoint_config
from modelhost.api.handlers.models import get_model, unreadable
from modelhost.api.pagination import list_response
from modelhost.autoscaling.scaling_store import remove_endpoint_scaling
from modelhost.errors import ResourceLimitExceeded, ValidationError
from modelhost.resources.endpoint import Endpoint, PendingUpdate, VariantSpec, VariantState, initial_state
from modelhost.resources.endpoint_config import EndpointConfig
from modelhost.resources.quota import instances_in_use
from modelhost.resources.status import IN_PROGRESS, EndpointStatus
from modelhost.resources.transform_job import job_of_hidden_endpoint
from modelhost.scheduler.placement import quota_for, quota_message
from modelhost.store.errors import UnreadableRecord
from modelhost.store.sqlite import AlreadyExists

KIND = "endpoint"


def not_found(ctx: ApiContext, name: str) -> ValidationError:
    return ValidationError(f'Could not find endpoint "{ctx.arn(KIND, name)}".')


def in_progress(endpoint: Endpoint) -> ValidationError:
    return ValidationError(f'Cannot update in-progress endpoint "{endpoint.arn}".')


def get_endpoint(ctx: ApiContext, name: str) -> Endpoint:
    try:
        endpoint = ctx.records.endpoints.get(name)
    except UnreadableRecord as exc:
        raise unreadable(exc) from exc
    if endpoint is None:
        raise not_found(ctx, name)
    return endpoint


def check_capacity(ctx: ApiContext, wanted: list[tuple[str, int]]) -> None:
    """Refuse what would exceed an instance-type quota, as AWS refuses it (ResourceLimitExceeded)."""
    used = instances_in_use(ctx.records.endpoints.list())
    delta: dict[str, int] = {}
    for instance_type, count in wanted:
        delta[instance_type] = delta.get(instance_type, 0) + count
    for instance_type, count in delta.items():
        quota = quota_for(instance_type, ctx.inventory, ctx.quotas, used, strict=ctx.settings.strict_instance_types)
        if count > 0 and quota.used + count > quota.limit:
            raise ResourceLimitExceeded(quota_message(instance_type, quota.limit, quota.used, count))


def _snapshot(ctx: ApiContext, config: EndpointConfig) -> tuple[VariantSpec, ...]:
    """The config's variants with their models, as the endpoint keeps them (AWS lets both be deleted later)."""
    return tuple(VariantSpec(variant=v, model=get_model(ctx, v.model_name)) for v in config.variants)


def create_endpoint(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    name = body["EndpointName"]
    endpoint_arn = ctx.arn(KIND, name)
    try:
        exists = ctx.records.endpoints.get(name) is not None
    except UnreadableRecord:
        exists = True
    if exists:
        raise ValidationError(f'Cannot create already existing endpoint "{endpoint_arn}".')
    config = get_endpoint_config(ctx, body["EndpointConfigName"])
    variants = _snapshot(ctx, config)
    check_capacity(ctx, [(s.instance_type, s.variant.initial_instance_count) for s in variants])
    now = ctx.now()
    endpoint = Endpoint(
        name=name,
        arn=endpoint_arn,
        config_name=config.name,
        status=EndpointStatus.CREATING,
        created=now,
        modified=now,
        region=ctx.region,
        variants=variants,
        states=tuple(initial_state(s.variant, now) for s in variants),
        tags=shapes.tags_from_request(body.get("Tags")),
        async_inference=config.async_inference,
    )
    try:
        ctx.records.endpoints.insert(name, endpoint)
    except AlreadyExists as exc:
        raise ValidationError(f'Cannot create already existing endpoint "{endpoint_arn}".') from exc
    ctx.wake_controller()
    return {"EndpointArn": endpoint_arn}


def describe_endpoint(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return shapes.endpoint_description(get_endpoint(ctx, body["EndpointName"]))


def list_endpoints(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_response(
        [shapes.endpoint_summary(e) for e in ctx.records.endpoints.list() if job_of_hidden_endpoint(e.name) is None],
        body,
        result_key="Endpoints",
        summary_keys=("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus"),
        name_key="EndpointName",
        status_key="EndpointStatus",
        sort_keys={"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"},
    )


def delete_endpoint(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    name = body["EndpointName"]
    get_endpoint(ctx, name)  # a damaged record is named, not silently deleted

    def mark_deleting(endpoint: Endpoint) -> Endpoint:
        if endpoint.status in IN_PROGRESS:
            raise in_progress(endpoint)
        return endpoint.mark_deleting(ctx.now())

    if ctx.records.endpoints.update(name, mark_deleting) is None:
        raise not_found(ctx, name)
    remove_endpoint_scaling(ctx.records, name)  # its scalable targets, policies and scheduled actions go with it
    ctx.wake_controller()
    return {}


def update_endpoint(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    """Record a blue/green move to another configuration; the controller brings it up and rolls back on failure."""
    name = body["EndpointName"]
    endpoint = get_endpoint(ctx, name)
    config = get_endpoint_config(ctx, body["EndpointConfigName"])
    variants = _snapshot(ctx, config)
    now = ctx.now()
    states = tuple(initial_state(s.variant, now) for s in variants)
    if body.get("RetainAllVariantProperties"):
        states = _retain_variant_properties(endpoint, states, body.get("ExcludeRetainedVariantProperties", []))
    check_capacity(ctx, [(s.instance_type, st.desired_count) for s, st in zip(variants, states, strict=True)])
    pending = PendingUpdate(config_name=config.name, variants=variants, states=states, started=now,
                            async_inference=config.async_inference)  # fmt: skip

    def apply(current: Endpoint) -> Endpoint:
        if current.status != EndpointStatus.IN_SERVICE:
            raise in_progress(current)
        return current.begin_update(pending, now)

    ctx.records.endpoints.update(name, apply)
    ctx.wake_controller()
    return {"EndpointArn": endpoint.arn}


def _retain_variant_properties(
    endpoint: Endpoint, states: tuple[VariantState, ...], excluded: list[dict[str, Any]]
) -> tuple[VariantState, ...]:
    """RetainAllVariantProperties: variants that keep their name keep their current count and weight."""
    skip = {e.get("VariantPropertyType") for e in excluded}
    kept = []
    for state in states:
        old = endpoint.state(state.name)
        if old is not None:
            if "DesiredInstanceCount" not in skip:
                state = replace(state, desired_count=old.desired_count)
            if "DesiredWeight" not in skip:
                state = replace(state, desired_weight=old.desired_weight, current_weight=old.desired_weight)
        kept.append(state)
    return tuple(kept)


def update_endpoint_weights_and_capacities(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    """Record new desired weights and instance counts; the controller converges and reports InService."""
    name = body["EndpointName"]
    changes = _weight_and_capacity_changes(body["DesiredWeightsAndCapacities"])
    endpoint = get_endpoint(ctx, name)
    unknown = sorted(set(changes) - {s.name for s in endpoint.states})
    if unknown:
        raise ValidationError(f'The variant(s) [{", ".join(unknown)}] are not present in endpoint "{endpoint.arn}".')
    growth = []
    for spec in endpoint.variants:
        count = changes.get(spec.name, (None, None))[1]
        state = endpoint.state(spec.name)
        if count is not None and state is not None and count > state.desired_count:
            growth.append((spec.instance_type, count - state.desired_count))
    check_capacity(ctx, growth)

    def apply(current: Endpoint) -> Endpoint:
        if current.status != EndpointStatus.IN_SERVICE:
            raise in_progress(current)
        return current.with_desired(changes, ctx.now())

    if ctx.records.endpoints.update(name, apply) is None:
        raise not_found(ctx, name)
    ctx.wake_controller()
    return {"EndpointArn": endpoint.arn}


def _weight_and_capacity_changes(entries: list[dict[str, Any]]) -> dict[str, tuple[float | None, int | None]]:
    by_name = {c["VariantName"]: c for c in entries}
    if len(by_name) != len(entries):
        raise ValidationError("Each VariantName may appear only once in DesiredWeightsAndCapacities.")
    changes: dict[str, tuple[float | None, int | None]] = {}
    for variant_name, change in by_name.items():
        if change.get("ServerlessUpdateConfig"):
            raise ValidationError("ServerlessUpdateConfig is not supported by modelhost (no serverless variants).")
        if change.get("DesiredWeight") is None and change.get("DesiredInstanceCount") is None:
            raise ValidationError(f"Variant '{variant_name}': specify DesiredWeight, DesiredInstanceCount or both.")
        weight = float(change["DesiredWeight"]) if change.get("DesiredWeight") is not None else None
        if weight is not None and not math.isfinite(weight):
            raise ValidationError(f"Variant '{variant_name}': DesiredWeight must be a finite number, not {weight}.")
        count = int(change["DesiredInstanceCount"]) if change.get("DesiredInstanceCount") is not None else None
        changes[variant_name] = (weight, count)
    return changes


OPERATIONS = {
    "CreateEndpoint": create_endpoint,
    "DescribeEndpoint": describe_endpoint,
    "ListEndpoints": list_endpoints,
    "DeleteEndpoint": delete_endpoint,
    "UpdateEndpoint": update_endpoint,
    "UpdateEndpointWeightsAndCapacities": update_endpoint_weights_and_capacities,
}
