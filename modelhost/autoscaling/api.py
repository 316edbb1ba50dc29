"""The Application Auto Scaling edge: `POST /` with `X-Amz-Target: AnyScaleFrontendService.<Operation>`
(AWS JSON 1.1), for SageMaker endpoint variants.

Reads the body under a limit, lets the server's `authorize` hook check the caller (`AutoScalingCall`: the raw
request for SigV4 and `application-autoscaling:<Operation>` for policies) before anything is decoded, parses
strict JSON (json_guard), checks it against botocore's "application-autoscaling" model with the control plane's
validator (ValidationException in AWS's words), runs the operation on a thread (one at a time) and writes the
JSON 1.1 answer. Every error is mapped here, once; no input gives a 500.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelhost import ids, json_guard
from modelhost.api import validation
from modelhost.autoscaling.errors import (
    InternalService,
    RequestTooLarge,
    SerializationError,
    UnknownAutoScalingOperation,
)
from modelhost.autoscaling.operations import OPERATIONS, ScalingContext
from modelhost.concurrency import Abandoned, run_blocking
from modelhost.errors import ApiError, ValidationError
from modelhost.http_body import BodyTooLarge, read_limited
from modelhost.settings import ServerSettings
from modelhost.store.errors import StoreError, client_text
from modelhost.store.records import Records

__all__ = ["AAS_TARGET_PREFIX", "AutoScalingApi", "AutoScalingCall", "Authorize"]

log = logging.getLogger(__name__)

AAS_TARGET_PREFIX = "AnyScaleFrontendService."
SERVICE = "application-autoscaling"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 1024 * 1024  # the largest request (PutScalingPolicy with metric queries) is a few KiB
OPERATION_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class AutoScalingCall:
    """What the `authorize` hook sees: the operation and the request exactly as sent (for SigV4)."""

    operation: str  # e.g. "RegisterScalableTarget"
    method: str
    scope: Mapping[str, Any]  # the ASGI scope (raw_path, query_string): modelhost.auth.wire_request takes it
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def action(self) -> str:
        """The IAM action, as identity policies name it."""
        return f"{SERVICE}:{self.operation}"


# Raises an ApiError (AuthError, AccessDenied) to refuse, answered as JSON 1.1; returns the caller's region
# (ARNs made by the call carry it), or None for the server's own.
Authorize = Callable[[AutoScalingCall], str | None]


def json_response(body: dict[str, Any], request_id: str, status: int = 200) -> Response:
    return Response(
        json.dumps(body), status_code=status, media_type=CONTENT_TYPE, headers={"x-amzn-RequestId": request_id}
    )


def error_response(error: ApiError, request_id: str) -> Response:
    return json_response({"__type": error.code, "Message": error.message}, request_id, error.status)


def parse_target(target: str | None) -> str:
    """The operation an X-Amz-Target names; UnknownOperationException for what this server does not serve."""
    if target is None or not target.startswith(AAS_TARGET_PREFIX):
        raise UnknownAutoScalingOperation(
            f"Expected X-Amz-Target '{AAS_TARGET_PREFIX}<Operation>', not {target!r:.120}."
        )
    operation = target[len(AAS_TARGET_PREFIX) :]
    if operation not in OPERATIONS:
        served = ", ".join(sorted(OPERATIONS))
        raise UnknownAutoScalingOperation(
            f"modelhost serves {served} of Application Auto Scaling, not {operation[:100]!r}."
        )
    return operation


def parse_params(operation: str, raw: bytes) -> dict[str, Any]:
    """The body as valid params of `operation`, explicit nulls dropped (pure)."""
    body: Any = {}
    if raw.strip():
        try:
            body = json_guard.loads(raw)
        except json_guard.NotJson as exc:
            raise SerializationError(f"The request body is not valid JSON: {exc}") from None
        except json_guard.UnsafeJson as exc:
            raise ValidationError(f"1 validation error detected: {exc.message}") from None
    if not isinstance(body, dict):
        raise SerializationError("The request body must be a JSON object of the operation's members.")
    model = validation.operation_model(SERVICE, operation)
    if model is None or model.input_shape is None:  # pragma: no cover - OPERATIONS are all in the model
        raise UnknownAutoScalingOperation(f"Application Auto Scaling has no operation {operation!r}.")
    validation.validate_input(model, body)
    params: dict[str, Any] = validation.without_null_members(model.input_shape, body)
    return params


class AutoScalingApi:
    """ASGI-callable handler for Application Auto Scaling requests over the server's records."""

    def __init__(
        self,
        records: Records,
        settings: ServerSettings,
        authorize: Authorize | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
        self._settings = settings
        self._authorize = authorize
        self._now = now
        self._lock = threading.Lock()  # one operation at a time: check-then-write holds

    async def handle(self, request: Request) -> Response:
        request_id = ids.request_id()
        target = request.headers.get("x-amz-target")
        try:
            return json_response(await self._dispatch(request, target), request_id)
        except ApiError as exc:
            level = logging.ERROR if exc.status >= 500 else logging.INFO
            log.log(level, "%.120s refused: %s: %s", target, exc.code, exc.message)
            return error_response(exc, request_id)
        except Exception:
            log.exception("internal error on %.120s", target)
            return error_response(InternalService("An internal error occurred; see the server log."), request_id)

    async def _dispatch(self, request: Request, target: str | None) -> dict[str, Any]:
        operation = parse_target(target)
        if request.method != "POST":
            raise UnknownAutoScalingOperation(f"Application Auto Scaling requests are POST, not {request.method[:20]}.")
        try:
            raw = await read_limited(request, MAX_BODY_BYTES)
        except BodyTooLarge as exc:
            raise RequestTooLarge(f"{exc} of Application Auto Scaling.") from None
        region = self._settings.region
        if self._authorize is not None:
            call = AutoScalingCall(operation, request.method, request.scope, request.headers.raw, raw)
            region = self._authorize(call) or region
        params = parse_params(operation, raw)
        ctx = ScalingContext(self._records, self._settings.account_id, region, self._now())

        def work() -> dict[str, Any]:
            with self._lock:
                return OPERATIONS[operation](ctx, params)

        try:
            return await run_blocking(work, timeout_s=OPERATION_TIMEOUT_S, name=f"autoscaling-{operation}")
        except StoreError as exc:
            log.error("Application Auto Scaling %s: the store failed: %s", operation, exc)
            raise InternalService(f"The store failed: {client_text(exc)}") from exc
        except Abandoned:
            raise InternalService(f"The store did not answer within {OPERATION_TIMEOUT_S:.0f} s; retry.") from None
