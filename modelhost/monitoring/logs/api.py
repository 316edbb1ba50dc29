"""The CloudWatch Logs edge: `POST /` with `X-Amz-Target: Logs_20140328.<Operation>` (AWS JSON 1.1).

Reads the body (strict JSON, json_guard), checks it against botocore's "logs" model with the control plane's
validator (every broken constraint is an InvalidParameterException, as CloudWatch Logs words it), lets the
server's `authorize` hook check the caller on the call's IAM action and log group ARN, runs the operation on
a thread of its own (the files are read there) and writes the JSON 1.1 response or error. No input gives a 500.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelhost import ids, json_guard
from modelhost.api import validation
from modelhost.concurrency import Abandoned, run_blocking
from modelhost.errors import ApiError
from modelhost.http_body import BodyTooLarge, read_limited
from modelhost.monitoring.logs import naming
from modelhost.monitoring.logs.errors import (
    InvalidParameter,
    LogsUnavailable,
    RequestTooLarge,
    SerializationError,
    UnknownLogsOperation,
)
from modelhost.monitoring.logs.event_ops import get_log_events
from modelhost.monitoring.logs.filtering import filter_log_events
from modelhost.monitoring.logs.groups import LogsContext, describe_log_groups, describe_log_streams
from modelhost.monitoring.logs.store import JobLookup, LogStore, NameLookup

log = logging.getLogger(__name__)

LOGS_TARGET_PREFIX = "Logs_20140328."
SERVICE = "logs"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 1024 * 1024  # CloudWatch Logs' largest request (PutLogEvents) is 1 MB
OPERATION_TIMEOUT_S = 60.0

Operation = Callable[[LogsContext, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Operation] = {
    "DescribeLogGroups": describe_log_groups,
    "DescribeLogStreams": describe_log_streams,
    "GetLogEvents": get_log_events,
    "FilterLogEvents": filter_log_events,
}


@dataclass(frozen=True, slots=True)
class LogsCall:
    """A request as the server's authorize hook sees it: parsed and valid, not yet carried out."""

    operation: str  # e.g. "GetLogEvents"
    params: dict[str, Any]  # the JSON body's members (explicit nulls dropped)
    body: bytes  # the raw body (what a SigV4 signature covers)
    log_group: str | None  # the log group it acts on; None for DescribeLogGroups (all of them)
    # the request as sent, for SigV4: modelhost.auth.wire_request(method, scope, raw_headers, body)
    method: str = "POST"
    scope: Mapping[str, Any] = field(default_factory=dict)  # the ASGI scope (raw_path, query_string)
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def action(self) -> str:
        """The IAM action, as identity policies name it."""
        return f"logs:{self.operation}"

    def resource_arn(self, region: str, account_id: str) -> str:
        """The IAM resource: the log group's ARN, or every log group's for DescribeLogGroups."""
        return naming.group_arn(self.log_group or "*", region=region, account_id=account_id)


# the server's check of the caller, run after the body is parsed and valid and before anything about the logs
# is read or told: raises an ApiError (an AuthError, AccessDeniedException) to refuse, answered as JSON 1.1;
# returns the caller's region (ARNs in the answer carry it), or None for the LogsApi's own
Authorize = Callable[[LogsCall], str | None]


def json_response(body: dict[str, Any], request_id: str, status: int = 200) -> Response:
    headers = {"x-amzn-RequestId": request_id}
    return Response(json.dumps(body), status_code=status, media_type=CONTENT_TYPE, headers=headers)


def error_response(error: ApiError, request_id: str) -> Response:
    return json_response({"__type": error.code, "message": error.message}, request_id, error.status)


def parse_target(target: str | None) -> str:
    """The operation an X-Amz-Target names; UnknownOperationException for what this server does not serve."""
    if target is None or not target.startswith(LOGS_TARGET_PREFIX):
        raise UnknownLogsOperation(f"Expected X-Amz-Target '{LOGS_TARGET_PREFIX}<Operation>', not {target!r:.120}.")
    operation = target[len(LOGS_TARGET_PREFIX) :]
    if operation not in OPERATIONS:
        served = ", ".join(sorted(OPERATIONS))
        raise UnknownLogsOperation(f"modelhost serves {served} of CloudWatch Logs, not {operation[:100]!r}.")
    return operation


def parse_call(operation: str, raw: bytes) -> LogsCall:
    """The body as a valid call of `operation` (pure); SerializationException / InvalidParameterException."""
    body: Any = {}
    if raw.strip():
        try:
            body = json_guard.loads(raw)
        except json_guard.NotJson as exc:
            raise SerializationError(f"The request body is not valid JSON: {exc}") from None
        except json_guard.UnsafeJson as exc:
            raise InvalidParameter(f"1 validation error detected: {exc.message}") from None
    if not isinstance(body, dict):
        raise SerializationError("The request body must be a JSON object of the operation's members.")
    model = validation.operation_model(SERVICE, operation)
    if model is None or model.input_shape is None:
        raise UnknownLogsOperation(f"CloudWatch Logs has no operation {operation!r}.")
    errors = validation.constraint_errors(model.input_shape, body)
    if errors:
        noun = "validation error" if len(errors) == 1 else "validation errors"
        raise InvalidParameter(f"{len(errors)} {noun} detected: " + "; ".join(errors))
    params = validation.without_null_members(model.input_shape, body)
    return LogsCall(operation, params, raw, _log_group(operation, params))


def _log_group(operation: str, params: dict[str, Any]) -> str | None:
    if operation == "DescribeLogGroups":
        return None
    name = params.get("logGroupName") or params.get("logGroupIdentifier")
    return None if name is None else naming.group_from_identifier(str(name))


class LogsApi:
    """CloudWatch Logs over the endpoints' log folders (`logs_dir`/<endpoint>/*.log), and the transform jobs'
    (`logs_dir`/transform-job.<job>/*.log) as /aws/sagemaker/TransformJobs; `job_names` gives jobs their case."""

    def __init__(
        self,
        logs_dir: Path,
        names: NameLookup,
        account_id: str,
        region: str,
        authorize: Authorize | None = None,
        local_zone: tzinfo | None = None,
        job_names: JobLookup | None = None,
    ) -> None:
        self._store = LogStore(logs_dir, names, local_zone, job_names=job_names)
        self._account_id = account_id
        self._region = region
        self._authorize = authorize

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
            error = ApiError("An internal error occurred; see the server log.", code="ServiceUnavailableException")
            return error_response(error, request_id)

    async def _dispatch(self, request: Request, target: str | None) -> dict[str, Any]:
        operation = parse_target(target)
        if request.method != "POST":
            raise UnknownLogsOperation(f"CloudWatch Logs requests are POST, not {request.method[:20]}.")
        try:
            raw = await read_limited(request, MAX_BODY_BYTES)
        except BodyTooLarge as exc:
            raise RequestTooLarge(f"{exc} of CloudWatch Logs.") from None
        call = dataclasses.replace(
            parse_call(operation, raw), method=request.method, scope=request.scope, raw_headers=request.headers.raw
        )
        region = (self._authorize(call) if self._authorize is not None else None) or self._region
        ctx = LogsContext(self._store, region, self._account_id)
        try:
            return await run_blocking(
                lambda: OPERATIONS[operation](ctx, call.params), timeout_s=OPERATION_TIMEOUT_S, name=f"logs-{operation}"
            )
        except Abandoned:
            raise LogsUnavailable(f"The log files were not read within {OPERATION_TIMEOUT_S:g} s; retry.") from None
        except OSError as exc:
            raise LogsUnavailable(f"The log files could not be read ({exc.strerror or exc}); retry.") from None
