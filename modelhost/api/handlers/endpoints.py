"""CreateEndpoint, DescribeEndpoint, ListEndpoints, DeleteEndpoint: record intent, the controller acts."""

from __future__ import annotations

from typing import Any

from modelhost.api.context import ApiContext, public
from modelhost.api.handlers.endpoint_configs import get_endpoint_config
from modelhost.api.handlers.models import get_model
from modelhost.api.pagination import list_response
from modelhost.errors import ResourceLimitExceeded, ValidationError
from modelhost.scheduler.placement import quota_for, quota_message
from modelhost.store.sqlite import AlreadyExists

KIND = "endpoint"
IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
HOLDS_INSTANCES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "InService"})


def not_found(ctx: ApiContext, name: str) -> ValidationError:
    return ValidationError(f'Could not find endpoint "{ctx.arn(KIND, name)}".')


def get_endpoint(ctx: ApiContext, name: str) -> dict[str, Any]:
    record = ctx.store.get(KIND, name)
    if record is None:
        raise not_found(ctx, name)
    return record


def instances_in_use(ctx: ApiContext) -> dict[str, int]:
    """Instances desired per instance type by endpoints that hold (or are getting) instances."""
    used: dict[str, int] = {}
    for endpoint in ctx.store.list(KIND):
        if endpoint.get("EndpointStatus") not in HOLDS_INSTANCES:
            continue
        fleets = [(endpoint.get("_deployment", {}), endpoint["ProductionVariants"])]
        if "_pending" in endpoint:  # a blue/green update runs both fleets for a while
            fleets.append((endpoint["_pending"], endpoint["_pending"]["ProductionVariants"]))
        for deployment, summaries in fleets:
            for variant in deployment.get("variants", []):
                instance_type = variant.get("InstanceType", "")
                used[instance_type] = used.get(instance_type, 0) + _desired(summaries, variant)
    return used


def _check_capacity(ctx: ApiContext, variants: list[dict[str, Any]]) -> None:
    """Refuse what would exceed an instance-type quota, as AWS refuses it (ResourceLimitExceeded)."""
    used = instances_in_use(ctx)
    delta: dict[str, int] = {}
    for variant in variants:
        delta[variant["InstanceType"]] = delta.get(variant["InstanceType"], 0) + int(
            variant.get("InitialInstanceCount", 1)
        )
    for instance_type, wanted in delta.items():
        quota = quota_for(instance_type, ctx.inventory, ctx.quotas, used, strict=ctx.settings.strict_instance_types)
        if wanted > 0 and quota.used + wanted > quota.limit:
            raise ResourceLimitExceeded(quota_message(instance_type, quota.limit, quota.used, wanted))


def _variant_summary(variant: dict[str, Any]) -> dict[str, Any]:
    weight = float(variant.get("InitialVariantWeight", 1.0))
    return {
        "VariantName": variant["VariantName"],
        "CurrentWeight": weight,
        "DesiredWeight": weight,
        "CurrentInstanceCount": 0,
        "DesiredInstanceCount": int(variant.get("InitialInstanceCount", 1)),
        "VariantStatus": [{"Status": "Creating", "StatusMessage": "waiting to start", "StartTime": 0.0}],
    }


def create_endpoint(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    name = body["EndpointName"]
    endpoint_arn = ctx.arn(KIND, name)
    if ctx.store.get(KIND, name) is not None:
        raise ValidationError(f'Cannot create already existing endpoint "{endpoint_arn}".')
    config = get_endpoint_config(ctx, body["EndpointConfigName"])
    # Snapshot the config and its models: AWS lets both be deleted while the endpoint runs.
    variants = [{**v, "Model": get_model(ctx, v["ModelName"])} for v in config["ProductionVariants"]]
    _check_capacity(ctx, variants)
    now = ctx.now()
    summaries = [_variant_summary(v) for v in variants]
    for summary in summaries:
        summary["VariantStatus"][0]["StartTime"] = now
    record = {
        "EndpointName": name,
        "EndpointArn": endpoint_arn,
        "EndpointConfigName": config["EndpointConfigName"],
        "EndpointStatus": "Creating",
        "CreationTime": now,
        "LastModifiedTime": now,
        "ProductionVariants": summaries,
        "_deployment": {"variants": variants, "region": ctx.region},
    }
    if body.get("Tags"):
        record["_tags"] = body["Tags"]
    try:
        ctx.store.insert(KIND, name, record)
    except AlreadyExists as exc:
        raise ValidationError(f'Cannot create already existing endpoint "{endpoint_arn}".') from exc
    ctx.wake_controller()
    return {"EndpointArn": endpoint_arn}


def describe_endpoint(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return public(get_endpoint(ctx, body["EndpointName"]))


def list_endpoints(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_response(
        ctx.store.list(KIND),
        body,
        result_key="Endpoints",
        summary_keys=("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus"),
        name_key="EndpointName",
        status_key="EndpointStatus",
        sort_keys={"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"},
    )


def delete_endpoint(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    name = body["EndpointName"]

    def mark_deleting(record: dict[str, Any]) -> dict[str, Any]:
        if record["EndpointStatus"] in IN_PROGRESS:
            raise ValidationError(f'Cannot update in-progress endpoint "{record["EndpointArn"]}".')
        return {**record, "EndpointStatus": "Deleting", "LastModifiedTime": ctx.now()}

    if ctx.store.update(KIND, name, mark_deleting) is None:
        raise not_found(ctx, name)
    ctx.wake_controller()
    return {}


def update_endpoint(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    """Record a blue/green move to another configuration; the controller brings it up and rolls back on failure."""
    name = body["EndpointName"]
    record = get_endpoint(ctx, name)
    config = get_endpoint_config(ctx, body["EndpointConfigName"])
    variants = [{**v, "Model": get_model(ctx, v["ModelName"])} for v in config["ProductionVariants"]]
    summaries = [_variant_summary(v) for v in variants]
    if body.get("RetainAllVariantProperties"):
        _retain_variant_properties(record, summaries, body.get("ExcludeRetainedVariantProperties", []))
    _check_capacity(
        ctx,
        [{**v, "InitialInstanceCount": s["DesiredInstanceCount"]} for v, s in zip(variants, summaries, strict=True)],
    )
    now = ctx.now()
    for summary in summaries:
        summary["VariantStatus"] = [{"Status": "Creating", "StatusMessage": "waiting to start", "StartTime": now}]

    def apply(current: dict[str, Any]) -> dict[str, Any]:
        if current["EndpointStatus"] != "InService":
            raise ValidationError(f'Cannot update in-progress endpoint "{current["EndpointArn"]}".')
        pending_summary = {
            "EndpointConfigName": config["EndpointConfigName"],
            "ProductionVariants": [
                {k: s[k] for k in ("VariantName", "DesiredInstanceCount", "DesiredWeight", "VariantStatus")}
                for s in summaries
            ],
            "StartTime": now,
        }
        pending = {
            "EndpointConfigName": config["EndpointConfigName"],
            "variants": variants,
            "ProductionVariants": summaries,
        }
        return {
            **current,
            "EndpointStatus": "Updating",
            "LastModifiedTime": now,
            "PendingDeploymentSummary": pending_summary,
            "_pending": pending,
        }

    ctx.store.update(KIND, name, apply)
    ctx.wake_controller()
    return {"EndpointArn": record["EndpointArn"]}


def _retain_variant_properties(
    record: dict[str, Any], summaries: list[dict[str, Any]], excluded: list[dict[str, Any]]
) -> None:
    """RetainAllVariantProperties: variants that keep their name keep their current count and weight."""
    skip = {e.get("VariantPropertyType") for e in excluded}
    current = {s["VariantName"]: s for s in record["ProductionVariants"]}
    for summary in summaries:
        old = current.get(summary["VariantName"])
        if old is None:
            continue
        if "DesiredInstanceCount" not in skip:
            summary["DesiredInstanceCount"] = old["DesiredInstanceCount"]
        if "DesiredWeight" not in skip:
            summary["DesiredWeight"] = summary["CurrentWeight"] = old["DesiredWeight"]


def update_endpoint_weights_and_capacities(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    """Record new desired weights and instance counts; the controller converges and reports InService."""
    name = body["EndpointName"]
    changes = _weight_and_capacity_changes(body["DesiredWeightsAndCapacities"])
    record = get_endpoint(ctx, name)
    known = {s["VariantName"] for s in record["ProductionVariants"]}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValidationError(
            f'The variant(s) [{", ".join(unknown)}] are not present in endpoint "{record["EndpointArn"]}".'
        )
    growth = [
        {
            **v,
            "InitialInstanceCount": int(changes[v["VariantName"]]["DesiredInstanceCount"])
            - _desired(record["ProductionVariants"], v),
        }
        for v in record["_deployment"]["variants"]
        if "DesiredInstanceCount" in changes.get(v["VariantName"], {})
    ]
    _check_capacity(ctx, [v for v in growth if v["InitialInstanceCount"] > 0])

    def apply(current: dict[str, Any]) -> dict[str, Any]:
        if current["EndpointStatus"] != "InService":
            raise ValidationError(f'Cannot update in-progress endpoint "{current["EndpointArn"]}".')
        for summary in current["ProductionVariants"]:
            change = changes.get(summary["VariantName"])
            if change is None:
                continue
            if "DesiredWeight" in change:
                summary["DesiredWeight"] = float(change["DesiredWeight"])
            if "DesiredInstanceCount" in change:
                summary["DesiredInstanceCount"] = int(change["DesiredInstanceCount"])
            summary["VariantStatus"] = [{"Status": "Updating", "StatusMessage": "applying", "StartTime": ctx.now()}]
        return {**current, "EndpointStatus": "Updating", "LastModifiedTime": ctx.now()}

    if ctx.store.update(KIND, name, apply) is None:
        raise not_found(ctx, name)
    ctx.wake_controller()
    return {"EndpointArn": record["EndpointArn"]}


def _weight_and_capacity_changes(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    changes = {c["VariantName"]: c for c in entries}
    if len(changes) != len(entries):
        raise ValidationError("Each VariantName may appear only once in DesiredWeightsAndCapacities.")
    for change in changes.values():
        if change.get("ServerlessUpdateConfig"):
            raise ValidationError("ServerlessUpdateConfig is not supported by modelhost (no serverless variants).")
        if "DesiredWeight" not in change and "DesiredInstanceCount" not in change:
            raise ValidationError(
                f"Variant '{change['VariantName']}': specify DesiredWeight, DesiredInstanceCount or both."
            )
    return changes


def _desired(summaries: list[dict[str, Any]], variant: dict[str, Any]) -> int:
    for summary in summaries:
        if summary["VariantName"] == variant["VariantName"]:
            return int(summary["DesiredInstanceCount"])
    return 0


OPERATIONS = {
    "CreateEndpoint": create_endpoint,
    "DescribeEndpoint": describe_endpoint,
    "ListEndpoints": list_endpoints,
    "DeleteEndpoint": delete_endpoint,
    "UpdateEndpoint": update_endpoint,
    "UpdateEndpointWeightsAndCapacities": update_endpoint_weights_and_capacities,
}
