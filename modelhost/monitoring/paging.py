"""NextTokens for ListMetrics and GetMetricData: an offset bound to the query it was issued for (pure)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelhost import page_tokens
from modelhost.monitoring.errors import InvalidNextToken

MAX_OFFSET = 10**9


def fingerprint(params: dict[str, Any]) -> str:
    """What identifies a query across its pages: every parameter but NextToken."""
    query = {k: v for k, v in params.items() if k != "NextToken"}
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_token(offset: int, params: dict[str, Any]) -> str:
    return page_tokens.encode({"o": offset, "f": fingerprint(params)})


def decode_token(params: dict[str, Any]) -> int:
    """The offset of `params["NextToken"]` (0 without one); InvalidNextToken for tokens not issued here
    or issued for another query."""
    token = params.get("NextToken")
    if token is None:
        return 0
    invalid = InvalidNextToken(f"The NextToken '{str(token)[:100]}' was not issued by this server; start without it.")
    data = page_tokens.decode(token)
    if data is None or "o" not in data or "f" not in data:
        raise invalid
    offset, issued_for = data["o"], data["f"]
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise invalid
    if issued_for != fingerprint(params):
        raise InvalidNextToken("The NextToken was issued for a different query; repeat that query or start without it.")
    return offset
