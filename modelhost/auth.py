"""The front door's identity check and permission check: every API request passes here first.

`authenticate` identifies the caller of an AWS-protocol request (control plane and sagemaker-runtime).
While the home has no access keys (HOME/keys.json absent or empty) any credentials are accepted, as
before, and the SigV4 scope's region still goes into ARNs. As soon as one key exists, every request must
carry a SigV4 signature (header or presigned query) made with a known key's secret within 5 minutes of
now (security/sigv4.py recomputes it with botocore), and only a verified scope's region is used.
`authenticate_bearer` does the same for the OpenAI routes' `Authorization: Bearer <ApiKey>`.

`authorize` checks the caller's identity policy (security/policy.py) for an action on a resource, raises
AccessDenied in AWS's words, and records mutating control-plane calls in the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelhost.errors import AccessDenied, MissingAuthenticationToken, UnrecognizedClient
from modelhost.security import actions
from modelhost.security.audit import audit_log_for
from modelhost.security.keys import AccessKey, key_store_for
from modelhost.security.policy import Decision, evaluate, parse_policy
from modelhost.security.sigv4 import WireRequest, parse_signature, verify_signature
from modelhost.settings import ServerSettings

_SCOPE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified key's owner."""

    user_name: str
    access_key_id: str
    policy: dict[str, Any] | None  # None: may do everything


@dataclass(frozen=True, slots=True)
class Caller:
    access_key: str | None  # from the SigV4 credential scope; None for unsigned requests
    region: str  # the (verified, once keys exist) scope's region, or the server's default
    service: str | None  # the scope's signing name (sagemaker, application-autoscaling)
    identity: Identity | None = None  # None while no keys exist (open access)


def _identity(key: AccessKey) -> Identity:
    return Identity(user_name=key.user_name, access_key_id=key.access_key_id, policy=key.policy)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def authenticate(request: WireRequest, settings: ServerSettings, now: Callable[[], datetime] = _utc_now) -> Caller:
    """Identify the caller of an AWS-protocol request; an AuthError in AWS's words when it does not verify."""
    keys = key_store_for(settings.home)
    if not keys.enabled():
        match = _SCOPE.search(request.header("authorization") or "")
        if match is None:
            return Caller(access_key=None, region=settings.region, service=None)
        return Caller(access_key=match.group(1), region=match.group(3), service=match.group(4))
    parts = parse_signature(request)
    if parts is None:
        raise MissingAuthenticationToken()
    key = keys.get(parts.access_key_id)
    if key is None:
        raise UnrecognizedClient()
    verify_signature(request, parts, key.secret_access_key, now())
    return Caller(access_key=key.access_key_id, region=parts.region, service=parts.service, identity=_identity(key))


def authenticate_bearer(headers: Mapping[str, str], settings: ServerSettings) -> Caller:
    """The OpenAI routes' caller from `Authorization: Bearer <ApiKey>`; any key while no keys exist."""
    keys = key_store_for(settings.home)
    if not keys.enabled():
        return Caller(access_key=None, region=settings.region, service=None)
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingAuthenticationToken(
            "You didn't provide an API key. Pass it as `Authorization: Bearer <ApiKey>` "
            "(create one with `modelhost keys create`)."
        )
    key = keys.by_api_key(token.strip())
    if key is None:
        shown = token.strip()[:6] + "*" * 4
        raise UnrecognizedClient(f"Incorrect API key provided: {shown}. Create one with `modelhost keys create`.")
    return Caller(access_key=key.access_key_id, region=settings.region, service=None, identity=_identity(key))


def authorize(caller: Caller, operation: str, resource: str, settings: ServerSettings) -> None:
    """Raise AccessDenied unless the caller's policy allows the operation's action on `resource`: a SageMaker
    operation (`CreateModel`) is `sagemaker:<operation>`, a full name (`logs:GetLogEvents`) stays as it is.
    Mutating control-plane operations are recorded in HOME/logs/audit.log, allowed or not."""
    identity = caller.identity
    action = actions.action(operation)
    decision = Decision.ALLOW
    if identity is not None and identity.policy is not None:
        decision = evaluate(parse_policy(identity.policy), action, resource)
    user = actions.user_arn(identity.user_name, settings.account_id) if identity is not None else "anonymous"
    if actions.is_mutating(operation) and not operation.startswith("Invoke"):
        audit_log_for(settings.logs_dir).record(
            identity=user,
            access_key_id=caller.access_key,
            operation=operation,
            resource=resource,
            allowed=decision is Decision.ALLOW,
        )
    if decision is Decision.ALLOW:
        return
    why = (
        "with an explicit deny in an identity-based policy"
        if decision is Decision.EXPLICIT_DENY
        else f"because no identity-based policy allows the {action} action"
    )
    raise AccessDenied(f"User: {user} is not authorized to perform: {action} on resource: {resource} {why}")


def wire_request(
    method: str, scope: Mapping[str, Any], headers: list[tuple[bytes, bytes]], body: bytes
) -> WireRequest:
    """The request as sent, from an ASGI scope: the raw path (not decoded), raw query, headers, body."""
    raw_path = scope.get("raw_path") or str(scope.get("path", "/")).encode()
    path = bytes(raw_path).decode("latin-1").split("?")[0]
    query = bytes(scope.get("query_string") or b"").decode("latin-1")
    pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]
    return WireRequest(method=method, raw_path=path, raw_query=query, headers=pairs, body=body)
