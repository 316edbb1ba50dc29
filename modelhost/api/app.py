"""The control-plane edge: `POST /` with `X-Amz-Target: SageMaker.<Operation>` (AWS JSON 1.1).

Parses the target and the JSON body, validates it against botocore's model, calls the operation's
handler and writes the response or the AWS error body. Handlers only read and write records.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelhost import ids, json_guard
from modelhost.api import validation
from modelhost.api.context import ApiContext
from modelhost.api.handlers import endpoint_configs, endpoints, models, tags, transform_jobs
from modelhost.auth import authenticate, authorize, wire_request
from modelhost.errors import ApiError, UnknownOperation, ValidationError
from modelhost.http_body import BodyTooLarge, read_limited
from modelhost.resources.quota import instances_in_use
from modelhost.scheduler.inventory import Inventory
from modelhost.scheduler.placement import quota_for
from modelhost.security import actions
from modelhost.settings import ServerSettings
from modelhost.store.records import Records

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
SERVICES = {"SageMaker": "sagemaker"}  # X-Amz-Target prefix -> botocore service name
# AWS documents no request size for the SageMaker API; its largest requests (CreateModel with a full
# Environment, tags) are a few hundred KiB. 6 MiB, as InvokeEndpoint, leaves room and bounds memory.
MAX_BODY_BYTES = 6 * 1024 * 1024

Handler = Callable[[ApiContext, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Handler] = {
    **models.OPERATIONS,
    **endpoint_configs.OPERATIONS,
    **endpoints.OPERATIONS,
    **tags.OPERATIONS,
    **transform_jobs.OPERATIONS,
}


def json_response(body: dict[str, Any], status: int = 200, request_id: str | None = None) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id or ids.request_id()},
    )


def error_response(error: ApiError, request_id: str) -> Response:
    body = {"__type": error.code, "message": error.message, **error.extra_fields()}
    return json_response(body, status=error.status, request_id=request_id)


class ControlPlaneApi:
    """ASGI-callable handler for every AWS JSON 1.1 request the server receives."""

    def __init__(
        self,
        records: Records,
        settings: ServerSettings,
        wake_controller: Callable[[], None],
        inventory: Inventory,
        quotas: Mapping[str, int],
        now: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
        self._settings = settings
        self._wake = wake_controller
        self._inventory = inventory
        self._quotas = quotas
        self._now = now

    async def handle(self, request: Request) -> Response:
        request_id = ids.request_id()
        try:
            return json_response(await self._dispatch(request), request_id=request_id)
        except ApiError as exc:
            target = request.headers.get("x-amz-target")
            if exc.status >= 500:
                log.error("%s failed: %s", target, exc.message)
            else:
                log.info("%s refused: %s: %s", target, exc.code, exc.message)
            return error_response(exc, request_id)
        except Exception:
            log.exception("internal error on %s", request.headers.get("x-amz-target"))
            error = ApiError("An internal error occurred; see the server log.", code="InternalFailure", status=500)
            return error_response(error, request_id)

    def quota_report(self) -> dict[str, Any]:
        """Limits, use and what is left per instance type (types in use or configured), and the host."""
        ctx = self._context(self._settings.region)
        used = instances_in_use(ctx.records.endpoints.list())
        strict = self._settings.strict_instance_types
        rows = [
            quota_for(t, self._inventory, self._quotas, used, strict=strict)
            for t in sorted(set(used) | set(self._quotas))
        ]
        inv = self._inventory
        return {
            "host": {"gpus": inv.gpu_count, "cpus": inv.cpus, "memory_gib": round(inv.memory_bytes / 1024**3, 1)},
            "strict_instance_types": strict,
            "quotas": [
                {"InstanceType": q.instance_type, "Limit": q.limit, "Used": q.used, "Left": q.left} for q in rows
            ],
        }

    def _context(self, region: str) -> ApiContext:
        return ApiContext(
            records=self._records,
            settings=self._settings,
            region=region,
            now=self._now,
            wake_controller=self._wake,
            inventory=self._inventory,
            quotas=self._quotas,
        )

    async def _dispatch(self, request: Request) -> dict[str, Any]:
        target = request.headers.get("x-amz-target", "")
        prefix, _, operation = target.partition(".")
        service = SERVICES.get(prefix)
        if service is None or not operation:
            raise UnknownOperation(f"Unrecognised X-Amz-Target '{target}'; expected 'SageMaker.<Operation>'.")
        model = validation.operation_model(service, operation)
        handler = OPERATIONS.get(operation)
        if model is None or handler is None:
            raise UnknownOperation(f"modelhost does not implement the operation {target} yet.")
        try:
            raw = await read_limited(request, MAX_BODY_BYTES)
        except BodyTooLarge as exc:
            raise ValidationError(f"{exc} of the SageMaker API.", status=413) from None
        caller = authenticate(wire_request(request.method, request.scope, request.headers.raw, raw), self._settings)
        body = self._parse_body(raw)
        validation.validate_input(model, body)
        resource = actions.control_plane_resource(
            operation, body, region=caller.region, account_id=self._settings.account_id
        )
        authorize(caller, operation, resource, self._settings)
        if model.input_shape is not None:
            body = validation.without_null_members(model.input_shape, body)
        return handler(self._context(caller.region), body)

    @staticmethod
    def _parse_body(raw: bytes) -> dict[str, Any]:
        """The body as a JSON object ({} when empty); SerializationException or ValidationException if not."""
        if not raw.strip():
            return {}
        try:
            body = json_guard.loads(raw)
        except json_guard.NotJson as exc:
            raise ApiError(
                f"The request body is not valid JSON: {exc}", code="SerializationException", status=400
            ) from None
        except json_guard.UnsafeJson as exc:
            raise ValidationError(f"1 validation error detected: {exc.message}") from None
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object.")
        return body
