"""AddTags, ListTags, DeleteTags on models, endpoint configs and endpoints (tags live on the stored record)."""

from __future__ import annotations

from typing import Any

from modelhost.api.context import ApiContext
from modelhost.errors import ValidationError

# ARN resource type -> (store kind, the record member that holds the tags)
TAGGABLE = {
    "model": ("model", "Tags"),
    "endpoint-config": ("endpoint_config", "Tags"),
    "endpoint": ("endpoint", "_tags"),
}
MAX_TAGS = 50


def _locate(ctx: ApiContext, arn: str) -> tuple[str, str, str]:
    """(store kind, resource name, tags member) of an ARN this server issued; ValidationException otherwise."""
    parts = arn.split(":", 5)
    resource = parts[5] if len(parts) == 6 and parts[0] == "arn" and parts[2] == "sagemaker" else ""
    kind_name = resource.split("/", 1)
    if len(kind_name) != 2 or kind_name[0] not in TAGGABLE:
        raise ValidationError(f"Resource arn {arn} is not a model, endpoint configuration or endpoint ARN.")
    kind, member = TAGGABLE[kind_name[0]]
    if ctx.store.get(kind, kind_name[1]) is None:
        raise ValidationError(f'Could not find resource "{arn}".')
    return kind, kind_name[1], member


def list_tags(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    kind, name, member = _locate(ctx, body["ResourceArn"])
    record = ctx.store.get(kind, name) or {}
    return {"Tags": list(record.get(member) or [])}


def add_tags(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    """Add or overwrite tags by key; returns the tags given, as SageMaker does."""
    kind, name, member = _locate(ctx, body["ResourceArn"])
    incoming = {t["Key"]: t for t in body["Tags"]}

    def change(record: dict[str, Any]) -> dict[str, Any]:
        merged = {t["Key"]: t for t in record.get(member) or []}
        merged.update(incoming)
        if len(merged) > MAX_TAGS:
            raise ValidationError(f"A resource can have at most {MAX_TAGS} tags; this would make {len(merged)}.")
        return {**record, member: list(merged.values())}

    ctx.store.update(kind, name, change)
    return {"Tags": body["Tags"]}


def delete_tags(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    kind, name, member = _locate(ctx, body["ResourceArn"])
    gone = set(body["TagKeys"])

    def change(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, member: [t for t in record.get(member) or [] if t["Key"] not in gone]}

    ctx.store.update(kind, name, change)
    return {}


OPERATIONS = {"AddTags": add_tags, "ListTags": list_tags, "DeleteTags": delete_tags}
