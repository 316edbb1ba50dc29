"""The tokens this server issues (pure).

GetLogEvents: `f/<offset>/<tag>` (read forward from that byte offset of the stream's file) and
`b/<offset>/<tag>` (read the events before it), as CloudWatch's `f/...` and `b/...`; the tag binds a token to
its group, stream and direction, so a token of another stream is refused rather than misread. The same
position gives the same token, which is how clients (the SageMaker SDK, `aws logs get-log-events`) see that
nothing newer has arrived.

DescribeLogGroups, DescribeLogStreams, FilterLogEvents: `mh1.` + base64url of where the next page starts
(a JSON value) and the query it was issued for (every parameter but nextToken). The prefix keeps botocore's
paginators from misreading it: given a token as `PaginationConfig={"StartingToken": ...}` (the SageMaker
SDK's deploy waiter does this with FilterLogEvents' nextToken on every poll), botocore first tries it as its
own resume token (standard base64 of a JSON object whose members become request parameters) and only then
sends it on as the service's; a plain base64url JSON token could decode, and its members were then sent as
unknown parameters (ParamValidationError: Unknown parameter "p"). Base64 of a text starting with `mh` starts
with the byte 0x9A, which no UTF-8 text starts with, so botocore's decoding always fails and the token is sent
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from modelhost import page_tokens
from modelhost.monitoring.logs.errors import InvalidParameter

Direction = Literal["f", "b"]
_STREAM_TOKEN = re.compile(r"([fb])/(\d{1,18})/([0-9a-f]{12})")


def _tag(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def stream_token(direction: Direction, offset: int, group: str, stream: str) -> str:
    return f"{direction}/{offset}/{_tag(direction, str(offset), group, stream)}"


def _invalid(token: str) -> InvalidParameter:
    return InvalidParameter(
        f"The specified nextToken '{token[:100]}' is not valid for this log stream; "
        "use a nextForwardToken or nextBackwardToken this stream returned, or call without nextToken."
    )


def parse_stream_token(token: str, group: str, stream: str) -> tuple[Direction, int]:
    """(direction, offset) of a token issued for this group and stream; InvalidParameterException if not."""
    match = _STREAM_TOKEN.fullmatch(token)
    if match is None:
        raise _invalid(token)
    direction: Direction = "f" if match.group(1) == "f" else "b"
    offset = int(match.group(2))
    if match.group(3) != _tag(direction, str(offset), group, stream):
        raise _invalid(token)
    return direction, offset


def _fingerprint(operation: str, params: dict[str, Any]) -> str:
    query = {k: v for k, v in params.items() if k != "nextToken"}
    return _tag(operation, json.dumps(query, sort_keys=True, default=str))


def page_token(operation: str, params: dict[str, Any], position: Any) -> str:
    return page_tokens.encode({"p": position, "q": _fingerprint(operation, params)})


def parse_page_token(operation: str, params: dict[str, Any]) -> Any:
    """The position `params["nextToken"]` holds (None without one); InvalidParameterException for a token
    this server did not issue, or issued for a different query."""
    token = params.get("nextToken")
    if token is None:
        return None
    text = str(token)
    data = page_tokens.decode(text)
    if data is None or "p" not in data or "q" not in data:
        raise InvalidParameter(
            f"The specified nextToken '{text[:100]}' was not issued by this server; call without nextToken."
        )
    position, issued_for = data["p"], data["q"]
    if issued_for != _fingerprint(operation, params):
        raise InvalidParameter(
            "The specified nextToken was issued for a different request; repeat that request's parameters "
            "with it, or call without nextToken."
        )
    return position
