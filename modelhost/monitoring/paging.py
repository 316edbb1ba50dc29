"""NextTokens for ListMetrics and GetMetricData: an offset bound to the query it was issued for (pure)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelhost import page_tokens
from modelhost.monitoring.errors import InvalidNextToken


def fingerprint(params: dict[str, Any]) -> str:
    """What identifies a query across its pages: every parameter but NextToken."""
    query = {k: v for k, v in params.items() if k != "NextToken"}
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_token(offset: int, params: dict[str, Any]) -> str:
    return page_tokens.offset_token(offset, fingerprint(params))


def decode_token(params: dict[str, Any]) -> int:
    """The offset of `params["NextToken"]` (0 without one); InvalidNextToken for tokens not issued here
    or issued for another query."""
    token = params.get("NextToken")
    if token is None:
        return 0
    try:
        return page_tokens.read_offset(token, fingerprint(params))
    except page_tokens.ForeignToken:
        raise InvalidNextToken(
            f"The NextToken '{str(token)[:100]}' was not issued by this server; start without it."
        ) from None
    except page_tokens.OtherQueryToken:
        raise InvalidNextToken(
            "The NextToken was issued for a different query; repeat that query or start without it."
        ) from None
