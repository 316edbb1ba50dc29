"""CreateModel, DescribeModel, ListModels, DeleteModel."""

from __future__ import annotations

from typing import Any

from modelhost.api import shapes
from modelhost.api.context import ApiContext
from modelhost.api.pagination import list_response
from modelhost.errors import ValidationError
from modelhost.resources.model import Model
from modelhost.router.cache import check_cache_environment
from modelhost.scheduler.launchers.environment import refusal_message, refused_model_variables
from modelhost.storage.limits import data_limits, effective_roots, outside_roots_reason
from modelhost.storage.model_ids import environment_refusal
from modelhost.storage.uris import LocalLocation, parse_model_data_url, parse_s3_data_source
from modelhost.store.errors import UnreadableRecord
from modelhost.store.sqlite import AlreadyExists

KIND = "model"


def not_found(ctx: ApiContext, name: str) -> ValidationError:
    return ValidationError(f'Could not find model "{ctx.arn(KIND, name)}".')


def unreadable(error: UnreadableRecord) -> ValidationError:
    return ValidationError(f"The stored {error.kind} {error.name!r} is damaged and cannot be read; run `modelhost "
                           "doctor` on the server's data directory.")


def _check_model_data(ctx: ApiContext, container: dict[str, Any], where: str) -> None:
    """Local model data and local model ids in the Environment only under the roots in force (limits.py)."""
    sources = []
    try:
        if container.get("ModelDataUrl"):
            sources.append(parse_model_data_url(container["ModelDataUrl"]))
        if container.get("ModelDataSource", {}).get("S3DataSource"):
            sources.append(parse_s3_data_source(container["ModelDataSource"]["S3DataSource"]))
        # once access keys exist, local paths need MODELHOST_LOCAL_DATA_ROOTS
        roots = effective_roots(data_limits(ctx.settings.local_data_roots, False, ctx.settings.home))
    except ValueError as exc:
        raise ValidationError(f"{where}: {exc}") from exc
    for source in sources:  # judged from the text: the same answer whether the path exists or not
        if isinstance(source.location, LocalLocation):
            reason = outside_roots_reason(source.location.path, roots)
            if reason is not None:
                raise ValidationError(f"{where}: {reason}")
    reason = environment_refusal(container.get("Environment") or {}, roots)
    if reason is not None:
        raise ValidationError(f"{where}.Environment: {reason}")


def create_model(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    name = body["ModelName"]
    containers = ([body["PrimaryContainer"]] if body.get("PrimaryContainer") else []) + body.get("Containers", [])
    if not containers:
        raise ValidationError("Either PrimaryContainer or Containers must be specified.")
    if body.get("PrimaryContainer") and body.get("Containers"):
        raise ValidationError("Specify either PrimaryContainer or Containers, not both.")
    if len(containers) > 1:
        raise ValidationError(
            "modelhost serves one container per model; inference pipelines (several Containers) are not supported."
        )
    environment = containers[0].get("Environment") or {}
    if any("\x00" in str(k) or "\x00" in str(v) for k, v in environment.items()):
        raise ValidationError("Environment: names and values cannot contain a NUL character.")
    refused = refused_model_variables(str(name) for name in environment)
    if refused:
        raise ValidationError(refusal_message(refused))
    _check_model_data(ctx, containers[0], "PrimaryContainer" if body.get("PrimaryContainer") else "Containers.1")
    try:
        check_cache_environment(environment)
    except ValueError as exc:
        raise ValidationError(f"Environment: {exc}") from exc
    model_arn = ctx.arn(KIND, name)
    model = shapes.model_from_request(body, containers[0], model_arn, ctx.now())
    try:
        ctx.records.models.insert(name, model)
    except AlreadyExists as exc:
        raise ValidationError(f'Cannot create already existing model "{model_arn}".') from exc
    return {"ModelArn": model_arn}


def get_model(ctx: ApiContext, name: str) -> Model:
    try:
        model = ctx.records.models.get(name)
    except UnreadableRecord as exc:
        raise unreadable(exc) from exc
    if model is None:
        raise not_found(ctx, name)
    return model


def describe_model(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return shapes.model_description(get_model(ctx, body["ModelName"]))


def list_models(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_response(
        [shapes.model_summary(m) for m in ctx.records.models.list()],
        body,
        result_key="Models",
        summary_keys=("ModelName", "ModelArn", "CreationTime"),
        name_key="ModelName",
        sort_keys={"Name": "ModelName", "CreationTime": "CreationTime"},
    )


def delete_model(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    # AWS lets a model be deleted while a config or endpoint uses it; endpoints keep their own snapshot.
    if not ctx.records.models.delete(body["ModelName"]):
        raise not_found(ctx, body["ModelName"])
    return {}


OPERATIONS = {
    "CreateModel": create_model,
    "DescribeModel": describe_model,
    "ListModels": list_models,
    "DeleteModel": delete_model,
}
