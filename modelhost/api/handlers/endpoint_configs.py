"""CreateEndpointConfig, DescribeEndpointConfig, ListEndpointConfigs, DeleteEndpointConfig."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from modelhost.api import shapes
from modelhost.api.context import ApiContext
from modelhost.api.handlers.models import get_model, unreadable
from modelhost.api.pagination import list_response
from modelhost.errors import ValidationError
from modelhost.resources.async_inference import AsyncInferenceConfig, check_async_variants, parse_async_config
from modelhost.resources.endpoint_config import EndpointConfig
from modelhost.storage.objects import ObjectError, objects_for
from modelhost.store.errors import UnreadableRecord
from modelhost.store.sqlite import AlreadyExists

KIND = "endpoint_config"


def not_found(ctx: ApiContext, name: str) -> ValidationError:
    return ValidationError(f'Could not find endpoint configuration "{ctx.arn(KIND, name)}".')


def _check_variants(ctx: ApiContext, variants: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for variant in variants:
        name = variant["VariantName"]
        if name.lower() in seen:
            raise ValidationError(f"The VariantName '{name}' is used more than once; variant names must be unique.")
        seen.add(name.lower())
        if variant.get("ServerlessConfig"):
            raise ValidationError(
                f"Variant '{name}': ServerlessConfig is not supported by modelhost; "
                "set InstanceType and InitialInstanceCount instead."
            )
        if not variant.get("ModelName"):
            raise ValidationError(f"Variant '{name}': ModelName is required.")
        if not variant.get("InstanceType"):
            raise ValidationError(f"Variant '{name}': InstanceType is required.")
        weight = variant.get("InitialVariantWeight")
        if weight is not None and not math.isfinite(float(weight)):
            raise ValidationError(f"Variant '{name}': InitialVariantWeight must be a finite number, not {weight}.")
        get_model(ctx, variant["ModelName"])  # `Could not find model "<arn>".`


def _async_config(ctx: ApiContext, body: dict[str, Any]) -> AsyncInferenceConfig | None:
    """AsyncInferenceConfig, checked (its locations as the server will write them); None when not asked for."""
    shape = body.get("AsyncInferenceConfig")
    if not shape:
        return None
    check_async_variants(body["ProductionVariants"])
    objects = objects_for(ctx.settings)

    def check(uri: str, for_write: bool) -> None:
        try:
            objects.check_location(uri, for_write=for_write)
        except ObjectError as exc:
            raise ValueError(str(exc)) from exc

    return parse_async_config(shape, check)


def create_endpoint_config(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    name = body["EndpointConfigName"]
    _check_variants(ctx, body["ProductionVariants"])
    async_inference = _async_config(ctx, body)
    config_arn = ctx.arn(KIND, name)
    config = replace(shapes.config_from_request(body, config_arn, ctx.now()), async_inference=async_inference)
    try:
        ctx.records.endpoint_configs.insert(name, config)
    except AlreadyExists as exc:
        raise ValidationError(f'Cannot create already existing endpoint configuration "{config_arn}".') from exc
    return {"EndpointConfigArn": config_arn}


def get_endpoint_config(ctx: ApiContext, name: str) -> EndpointConfig:
    try:
        config = ctx.records.endpoint_configs.get(name)
    except UnreadableRecord as exc:
        raise unreadable(exc) from exc
    if config is None:
        raise not_found(ctx, name)
    return config


def describe_endpoint_config(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return shapes.config_description(get_endpoint_config(ctx, body["EndpointConfigName"]))


def list_endpoint_configs(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_response(
        [shapes.config_summary(c) for c in ctx.records.endpoint_configs.list()],
        body,
        result_key="EndpointConfigs",
        summary_keys=("EndpointConfigName", "EndpointConfigArn", "CreationTime"),
        name_key="EndpointConfigName",
        sort_keys={"Name": "EndpointConfigName", "CreationTime": "CreationTime"},
    )


def delete_endpoint_config(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    # AWS allows deleting a config in use; the endpoint keeps serving from its own snapshot.
    if not ctx.records.endpoint_configs.delete(body["EndpointConfigName"]):
        raise not_found(ctx, body["EndpointConfigName"])
    return {}


OPERATIONS = {
    "CreateEndpointConfig": create_endpoint_config,
    "DescribeEndpointConfig": describe_endpoint_config,
    "ListEndpointConfigs": list_endpoint_configs,
    "DeleteEndpointConfig": delete_endpoint_config,
}
