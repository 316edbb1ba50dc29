"""The front door's identity check: every request passes here first.

Authentication is not enforced yet (any credentials are accepted while the server listens on loopback);
this is the one place where SigV4 verification will be added. The SigV4 scope is still read so that
ARNs carry the caller's region.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_SCOPE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True, slots=True)
class Caller:
    access_key: str | None  # from the SigV4 credential scope; None for unsigned requests
    region: str  # the scope's region, or the server's default
    service: str | None  # the scope's signing name (sagemaker, application-autoscaling)


def authenticate(headers: Mapping[str, str], default_region: str) -> Caller:
    """Identify the caller of a request. Accepts any credentials for now (see module docstring)."""
    match = _SCOPE.search(headers.get("authorization", ""))
    if match is None:
        return Caller(access_key=None, region=default_region, service=None)
    return Caller(access_key=match.group(1), region=match.group(3), service=match.group(4))
