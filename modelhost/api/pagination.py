"""Sorting, filtering and NextToken/MaxResults paging shared by every List* operation (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from modelhost import page_tokens
from modelhost.errors import ValidationError


def epoch_seconds(value: Any) -> float:
    """Request timestamps: boto3 sends integer epoch seconds, other SDKs floats or ISO-8601 strings."""
    if isinstance(value, bool):
        raise ValidationError(f"Invalid timestamp value: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise ValidationError(f"Invalid timestamp value: '{value}'") from exc
    raise ValidationError(f"Invalid timestamp value: {value!r}")


def _fingerprint(body: dict[str, Any]) -> str:
    query = {k: v for k, v in body.items() if k not in ("NextToken", "MaxResults")}
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:12]




def _decode_token(token: str, fingerprint: str) -> int:
    """The offset a NextToken carries; ValidationException for anything `_encode_token` did not make."""
    try:
        return page_tokens.read_offset(token, fingerprint)
    except page_tokens.ForeignToken:
        raise ValidationError(f"Invalid pagination token: '{token[:200]}'.") from None
    except page_tokens.OtherQueryToken:
        raise ValidationError(
            "The pagination token was issued for a different query; start again without it."
        ) from None


def _encode_token(offset: int, fingerprint: str) -> str:
    return page_tokens.offset_token(offset, fingerprint)


TIME_FILTERS = {
    "CreationTimeAfter": ("CreationTime", "after"),
    "CreationTimeBefore": ("CreationTime", "before"),
    "LastModifiedTimeAfter": ("LastModifiedTime", "after"),
    "LastModifiedTimeBefore": ("LastModifiedTime", "before"),
}


def page(
    items: list[dict[str, Any]],
    body: dict[str, Any],
    *,
    name_key: str,
    sort_keys: dict[str, str],
    status_key: str | None = None,
    default_max_results: int = 10,
) -> tuple[list[dict[str, Any]], str | None]:
    """Filter (NameContains, time bounds, StatusEquals), sort (SortBy/SortOrder) and cut one page.

    `sort_keys` maps the API's SortBy values to record keys. Returns the page and the NextToken to send,
    or None on the last page. A token only works for the query that produced it.
    """
    selected = [item for item in items if _matches(item, body, name_key, status_key)]
    sort_by = body.get("SortBy", "CreationTime")
    key = sort_keys.get(sort_by, "CreationTime")
    sort_key: Callable[[dict[str, Any]], Any] = (
        (lambda item: str(item.get(key, "")).lower())
        if key.endswith(("Name", "Status"))
        else (lambda item: item.get(key, 0))
    )
    selected.sort(key=sort_key, reverse=body.get("SortOrder", "Descending") == "Descending")
    fingerprint = _fingerprint(body)
    offset = _decode_token(body["NextToken"], fingerprint) if body.get("NextToken") else 0
    limit = int(body.get("MaxResults") or default_max_results)
    chunk = selected[offset : offset + limit]
    following = offset + limit
    return chunk, (_encode_token(following, fingerprint) if following < len(selected) else None)


def _matches(item: dict[str, Any], body: dict[str, Any], name_key: str, status_key: str | None) -> bool:
    needle = body.get("NameContains")
    if needle and needle.lower() not in str(item.get(name_key, "")).lower():
        return False
    if status_key and body.get("StatusEquals") and item.get(status_key) != body["StatusEquals"]:
        return False
    for member, (field, direction) in TIME_FILTERS.items():
        if member in body:
            bound = epoch_seconds(body[member])
            value = float(item.get(field, 0))
            if (direction == "after" and value <= bound) or (direction == "before" and value >= bound):
                return False
    return True


def list_response(
    records: list[dict[str, Any]],
    body: dict[str, Any],
    *,
    result_key: str,
    summary_keys: tuple[str, ...],
    name_key: str,
    sort_keys: dict[str, str],
    status_key: str | None = None,
) -> dict[str, Any]:
    """A List* operation's response: one page of summaries under `result_key`, and NextToken if more remain."""
    items, token = page(records, body, name_key=name_key, sort_keys=sort_keys, status_key=status_key)
    response: dict[str, Any] = {result_key: [{k: item[k] for k in summary_keys if k in item} for item in items]}
    if token:
        response["NextToken"] = token
    return response
