"""The one form of every NextToken this server issues (SageMaker List*, CloudWatch, CloudWatch Logs,
Application Auto Scaling): `mh1.` + base64url of a small JSON object.

The prefix matters: a botocore paginator given a token as `StartingToken` (the SageMaker Python SDK resumes its
log polling that way) first tries to read it as botocore's own token — base64 of a JSON object — and, when
that works, sends the object's keys as request parameters. A token starting with `mh1.` never decodes there,
so botocore sends it as it is. Decoding is strict: anything this module did not make is None.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

PREFIX = "mh1."
MAX_CHARS = 64 * 1024


def encode(payload: Mapping[str, Any]) -> str:
    raw = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True)
    return PREFIX + base64.urlsafe_b64encode(raw.encode()).decode()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not part of a page token")


def decode(token: object) -> dict[str, Any] | None:
    """The payload of a token `encode` made; None for anything else (wrong prefix, not base64, not JSON, huge)."""
    if not isinstance(token, str) or not token.startswith(PREFIX) or len(token) > MAX_CHARS:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token[len(PREFIX) :].encode()), parse_constant=_no_constant)
    except (ValueError, binascii.Error, RecursionError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


MAX_OFFSET = 10**9  # more items than any list holds; a token past it was not made here


class ForeignToken(ValueError):
    """A token this server did not issue."""


class OtherQueryToken(ValueError):
    """A token issued for a different query than the one it came back with."""


def offset_token(offset: int, fingerprint: str) -> str:
    """The NextToken of a list page starting at `offset` of the query `fingerprint` identifies."""
    return encode({"o": offset, "f": fingerprint})


def read_offset(token: object, fingerprint: str) -> int:
    """The offset an `offset_token` carries; ForeignToken / OtherQueryToken otherwise (each API words them)."""
    data = decode(token)
    offset = data.get("o") if data is not None else None
    if data is None or isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise ForeignToken(str(token)[:200])
    if data.get("f") != fingerprint:
        raise OtherQueryToken(str(token)[:200])
    return offset
