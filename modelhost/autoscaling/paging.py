"""MaxResults / NextToken paging of the Describe* operations: 1 to 50 items a page, 50 by default, and tokens
bound to the query they were issued for (pure)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from modelhost import page_tokens
from modelhost.autoscaling.errors import InvalidNextToken
from modelhost.errors import ValidationError

T = TypeVar("T")
MAX_RESULTS = 50


def _fingerprint(params: dict[str, Any]) -> str:
    query = {k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _offset(params: dict[str, Any]) -> int:
    token = params.get("NextToken")
    if token is None:
        return 0
    try:
        return page_tokens.read_offset(token, _fingerprint(params))
    except page_tokens.ForeignToken:
        raise InvalidNextToken(f"Invalid NextToken: '{str(token)[:100]}' was not issued by this server.") from None
    except page_tokens.OtherQueryToken:
        raise InvalidNextToken(
            "Invalid NextToken: it was issued for a different query; repeat that query or start again."
        ) from None


def max_results(params: dict[str, Any]) -> int:
    value = params.get("MaxResults", MAX_RESULTS)
    if value > MAX_RESULTS:
        constraint = f"less than or equal to {MAX_RESULTS}"
    elif value < 1:
        constraint = "greater than or equal to 1"
    else:
        return int(value)
    raise ValidationError(
        f"1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy constraint: "
        f"Member must have value {constraint}"
    )


def page(items: list[T], params: dict[str, Any]) -> tuple[list[T], str | None]:
    """The page of `items` the request asks for, and the NextToken of the next page (None on the last)."""
    size = max_results(params)
    start = _offset(params)
    end = start + size
    token = None
    if end < len(items):
        token = page_tokens.offset_token(end, _fingerprint(params))
    return items[start:end], token
