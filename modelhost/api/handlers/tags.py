"""AddTags, ListTags, DeleteTags on models, endpoint configs and endpoints (tags live on the records)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol, TypeVar

from modelhost.api import shapes
from modelhost.api.context import ApiContext
from modelhost.api.handlers.models import unreadable
from modelhost.errors import ValidationError
from modelhost.resources.model import Tag
from modelhost.store.errors import UnreadableRecord
from modelhost.store.records import RecordTable

MAX_TAGS = 50


class Tagged(Protocol):
    @property
    def tags(self) -> tuple[Tag, ...]: ...


R = TypeVar("R", bound=Tagged)


def _locate(ctx: ApiContext, arn: str) -> tuple[RecordTable[Any], str]:
    """The table and name of a resource this server issued an ARN for; ValidationException otherwise."""
    parts = arn.split(":", 5)
    resource = parts[5] if len(parts) == 6 and parts[0] == "arn" and parts[2] == "sagemaker" else ""
    kind_name = resource.split("/", 1)
    tables: dict[str, RecordTable[Any]] = {
        "model": ctx.records.models,
        "endpoint-config": ctx.records.endpoint_configs,
        "endpoint": ctx.records.endpoints,
        "transform-job": ctx.records.transform_jobs,
    }
    if len(kind_name) != 2 or kind_name[0] not in tables:
        raise ValidationError(
            f"Resource arn {arn} is not a model, endpoint configuration, endpoint or transform job ARN."
        )
    table = tables[kind_name[0]]
    try:
        found = table.get(kind_name[1]) is not None
    except UnreadableRecord as exc:
        raise unreadable(exc) from exc
    if not found:
        raise ValidationError(f'Could not find resource "{arn}".')
    return table, kind_name[1]


def list_tags(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    table, name = _locate(ctx, body["ResourceArn"])
    record = table.get(name)
    return {"Tags": shapes.tags_shape(record.tags) if record is not None else []}


def add_tags(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    """Add or overwrite tags by key; returns the tags given, as SageMaker does."""
    table, name = _locate(ctx, body["ResourceArn"])
    incoming = shapes.tags_from_request(body["Tags"])

    def change(record: Any) -> Any:
        merged = {t.key: t for t in record.tags}
        merged.update({t.key: t for t in incoming})
        if len(merged) > MAX_TAGS:
            raise ValidationError(f"A resource can have at most {MAX_TAGS} tags; this would make {len(merged)}.")
        return replace(record, tags=tuple(merged.values()))

    table.update(name, change)
    return {"Tags": body["Tags"]}


def delete_tags(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    table, name = _locate(ctx, body["ResourceArn"])
    gone = set(body["TagKeys"])

    def change(record: Any) -> Any:
        return replace(record, tags=tuple(t for t in record.tags if t.key not in gone))

    table.update(name, change)
    return {}


OPERATIONS = {"AddTags": add_tags, "ListTags": list_tags, "DeleteTags": delete_tags}
