"""The CloudWatch metrics edge: GetMetricStatistics, GetMetricData, ListMetrics and PutMetricData, and the metric
alarm operations (alarm_ops.py), in all three protocols botocore speaks for CloudWatch (wire.py), over the
metric store.

`handle` reads the body under a limit, finds the protocol and operation, lets the caller's `authorize` hook
see the call (`IncomingCall`: the raw request for SigV4 and `cloudwatch:<Operation>` for policies) before any
parameter is decoded, then decodes, validates against botocore's model (input_check.py), runs the operation
off the event loop and answers in the request's protocol. Every error is mapped here, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelhost import ids
from modelhost.api.validation import operation_model
from modelhost.concurrency import Abandoned, run_blocking
from modelhost.errors import ApiError
from modelhost.http_body import BodyTooLarge, read_limited
from modelhost.monitoring import alarm_ops, input_check, wire
from modelhost.monitoring.alarms import AlarmStoreError
from modelhost.monitoring.context import CloudWatchContext
from modelhost.monitoring.errors import InternalServiceError, RequestTooLarge, UnknownCloudWatchOperation
from modelhost.monitoring.ingest import put_metric_data
from modelhost.monitoring.metric_data import get_metric_data
from modelhost.monitoring.metric_store import MetricStoreError, SqliteMetricStore
from modelhost.monitoring.queries import get_metric_statistics, list_metrics
from modelhost.monitoring.wire import Kind, cloudwatch_request_kind

__all__ = ["CloudWatchApi", "IncomingCall", "cloudwatch_request_kind"]

log = logging.getLogger(__name__)

Operation = Callable[[CloudWatchContext, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Operation] = {
    "GetMetricStatistics": get_metric_statistics,
    "GetMetricData": get_metric_data,
    "ListMetrics": list_metrics,
    "PutMetricData": put_metric_data,
    **alarm_ops.OPERATIONS,
}
STORE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """What the `authorize` hook sees: the request as sent (for SigV4) and the operation it calls."""

    kind: Kind  # "cbor" | "json" | "query"
    operation: str  # e.g. "PutMetricData"
    action: str  # "cloudwatch:PutMetricData", as identity policies name it
    method: str
    scope: Mapping[str, Any]  # the ASGI scope (raw_path, query_string): modelhost.auth.wire_request takes it
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes  # exactly as received (still gzip-compressed when it was sent so: SigV4 signs these bytes)


# Returns the caller's region (it goes into the operation's context) or raises an ApiError (AuthError,
# AccessDenied) that is answered in the request's protocol.
Authorize = Callable[[IncomingCall], str | None]


class CloudWatchApi:
    """ASGI-callable handler for CloudWatch requests; route with `cloudwatch_request_kind`."""

    def __init__(
        self,
        store: SqliteMetricStore,
        account_id: str,
        region: str,
        authorize: Authorize | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._account_id = account_id
        self._region = region
        self._authorize = authorize
        self._now = now

    async def handle(self, request: Request, body: bytes | None = None) -> Response:
        """Answer one request; `body` when the router has already read it (it must be the whole body)."""
        request_id = ids.request_id()
        kind: Kind = "json"
        try:
            raw = body if body is not None else await self._read(request)
            if len(raw) > wire.MAX_BODY_BYTES:
                raise RequestTooLarge(
                    f"The request body is over the {wire.MAX_BODY_BYTES}-byte limit of the CloudWatch API."
                )
            found = cloudwatch_request_kind(request.method, request.url.path, request.headers, raw[: wire.PREFIX_BYTES])
            if found is None:
                raise UnknownCloudWatchOperation(
                    "This is not a CloudWatch request.", code="UnknownOperationException", status=404
                )
            kind = found
            return await self._call(request, kind, raw, request_id)
        except ApiError as exc:
            if exc.status >= 500:
                log.error("CloudWatch request failed: %s: %s", exc.code, exc.message)
            else:
                log.info("CloudWatch request refused: %s: %s", exc.code, exc.message)
            return wire.failure(kind, exc, request_id)
        except Exception:
            log.exception("internal error on a CloudWatch request")
            error = InternalServiceError("An internal error occurred; see the server log.")
            return wire.failure(kind, error, request_id)

    @staticmethod
    async def _read(request: Request) -> bytes:
        try:
            return await read_limited(request, wire.MAX_BODY_BYTES)
        except BodyTooLarge as exc:
            raise RequestTooLarge(f"{exc} of the CloudWatch API.") from None

    async def _call(self, request: Request, kind: Kind, raw: bytes, request_id: str) -> Response:
        head = wire.parse_head(kind, request.url.path, request.headers, raw)
        operation = OPERATIONS.get(head.operation)
        if operation is None:
            raise UnknownCloudWatchOperation(
                f"modelhost does not implement the CloudWatch operation {head.operation} yet; it implements "
                f"{', '.join(sorted(OPERATIONS))}.",
                code="InvalidAction" if kind == "query" else "UnknownOperationException",
            )
        region = self._region
        if self._authorize is not None:
            call = IncomingCall(
                kind, head.operation, head.action, request.method, request.scope, request.headers.raw, raw
            )
            region = self._authorize(call) or region
        model = operation_model(wire.SERVICE, head.operation)
        params = input_check.checked(model, wire.decode_params(head, model))
        ctx = CloudWatchContext(self._store, self._account_id, region, self._now())
        try:
            result = await run_blocking(
                lambda: operation(ctx, params), timeout_s=STORE_TIMEOUT_S, name=f"cloudwatch-{head.operation}"
            )
        except (MetricStoreError, AlarmStoreError) as exc:
            raise InternalServiceError(f"The metric store failed: {exc}") from exc
        except Abandoned:
            raise InternalServiceError(f"The metric store did not answer within {STORE_TIMEOUT_S:.0f} s.") from None
        return wire.success(kind, model, result, request_id)
