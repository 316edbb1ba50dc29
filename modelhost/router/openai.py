"""The OpenAI-compatible front door: `GET /v1/models` (InService endpoints), `POST /v1/chat/completions`
and `POST /v1/completions`, whose `model` names an endpoint; the request goes to one of its instances'
same route and the answer (SSE included) streams back unbuffered.

Errors are OpenAI error objects `{"error": {"message", "type", "param", "code"}}`. Once the home has access
keys, `Authorization: Bearer <ApiKey>` must name one (401 otherwise) whose policy allows InvokeEndpoint on
the endpoint `model` names (403 otherwise); with no keys any API key is accepted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelhost import json_guard
from modelhost.auth import Caller, authenticate_bearer, authorize
from modelhost.errors import AccessDenied, ApiError, AuthError, ServiceUnavailable, Throttled
from modelhost.http_body import BodyTooLarge, printable_ascii, read_limited
from modelhost.monitoring.invocations import InvocationMetrics, Outcome, Timing
from modelhost.router.app import COLD_START_HEADER
from modelhost.router.forward import (
    InvocationRouter,
    LeasedStream,
    UpstreamBroken,
    UpstreamError,
    UpstreamRequest,
    UpstreamTimeout,
    failure_message,
)
from modelhost.security import actions
from modelhost.settings import ServerSettings

log = logging.getLogger(__name__)

RELAYED_HEADERS = ("content-type", "cache-control")


@dataclass(frozen=True, slots=True)
class ServedModel:
    name: str  # the endpoint name, which clients pass as `model`
    created_s: int  # the endpoint's creation time, epoch seconds


def openai_error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 404:
        kind = "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _error_for(exc: ApiError | UpstreamError, endpoint: str) -> Response:
    """The one mapping of the router's errors to OpenAI error objects."""
    if isinstance(exc, UpstreamError):  # forwarding failed: the gateway's fault, not the caller's
        return openai_error(
            504 if isinstance(exc, UpstreamTimeout) else 502, failure_message(exc, endpoint), code="upstream_error"
        )
    if isinstance(exc, ServiceUnavailable):
        return openai_error(503, exc.message, code="service_unavailable")
    if isinstance(exc, Throttled):
        answer = openai_error(429, exc.message, code="rate_limit_exceeded")
        if exc.retry_after_s is not None:
            answer.headers["Retry-After"] = str(exc.retry_after_s)
        return answer
    return openai_error(exc.status if exc.status < 500 else 500, exc.message, code=exc.code)


async def _relay(answer: LeasedStream, endpoint: str, done: Callable[[bool], None]) -> AsyncIterator[bytes]:
    """The worker's body as it arrives; closing (client gone) closes the upstream so the worker aborts.
    `done(broke)` is called when it ends."""
    sse = answer.answer.headers.get("content-type", "").startswith("text/event-stream")
    broke = False
    try:
        async for chunk in answer.answer.chunks():
            yield chunk
    except (UpstreamBroken, UpstreamTimeout) as exc:
        broke = True
        log.warning("OpenAI stream from %s broke: %s", answer.instance_id, exc)
        if sse:
            error = {
                "error": {
                    "message": f"the model's stream broke ({exc}); see modelhost logs {endpoint}",
                    "type": "server_error",
                    "param": None,
                    "code": "stream_broken",
                }
            }
            yield b"data: " + json.dumps(error).encode() + b"\n\n"
    finally:
        await answer.aclose()
        done(broke)


class OpenAiApi:
    """Routes `model` to an endpoint through the shared InvocationRouter (selection, admission, one retry)."""

    def __init__(
        self,
        settings: ServerSettings,
        router: InvocationRouter,
        endpoint_status: Callable[[str], str | None],
        served_models: Callable[[], list[ServedModel]],
        metrics: InvocationMetrics,
    ) -> None:
        self._settings = settings
        self._router = router
        self._endpoint_status = endpoint_status
        self._served_models = served_models
        self._metrics = metrics

    async def handle(self, request: Request) -> Response:
        """GET /v1/models[/{model}], POST /v1/chat/completions and /v1/completions."""
        try:
            caller = authenticate_bearer(request.headers, self._settings)
        except AuthError as exc:
            return openai_error(401, exc.message, code="invalid_api_key")
        if request.method == "GET":
            return await (self.model(request) if "model" in request.path_params else self.models(request))
        return await self.proxy(request, caller)

    async def models(self, request: Request) -> Response:
        data = [
            {"id": m.name, "object": "model", "created": m.created_s, "owned_by": "modelhost"}
            for m in self._served_models()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        for served in self._served_models():
            if served.name == name:
                return JSONResponse(
                    {"id": name, "object": "model", "created": served.created_s, "owned_by": "modelhost"}
                )
        return openai_error(
            404,
            f"The model `{name}` does not exist: no InService endpoint has that name.",
            param="model",
            code="model_not_found",
        )

    async def proxy(self, request: Request, caller: Caller) -> Response:
        """POST /v1/chat/completions or /v1/completions → the same route of one instance of `model`."""
        accept = request.headers.get("accept", "*/*")
        if not printable_ascii(accept):
            return openai_error(400, "The Accept header must hold printable US-ASCII characters only.")
        try:
            body = await read_limited(request, self._settings.openai_max_body_bytes)
        except BodyTooLarge as exc:
            return openai_error(413, f"{exc} (MODELHOST_OPENAI_MAX_BODY_BYTES sets it).", code="request_too_large")
        parsed = _parse(body)
        if isinstance(parsed, Response):
            return parsed
        model = parsed.get("model")
        if not isinstance(model, str) or not model:
            return openai_error(400, "model is required: the name of an InService endpoint", param="model")
        try:  # counts as InvokeEndpoint on the endpoint `model` names
            resource = actions.endpoint_resource(model, region=caller.region, account_id=self._settings.account_id)
            authorize(caller, "InvokeEndpoint", resource, self._settings)
        except AccessDenied as exc:
            return openai_error(403, exc.message, code="access_denied")
        if self._endpoint_status(model) is None:
            return openai_error(
                404,
                f"The model `{model}` does not exist: no endpoint has that name (GET /v1/models lists them).",
                param="model",
                code="model_not_found",
            )
        headers = {"content-type": "application/json", "accept": accept}
        path = request.url.path[request.url.path.index("/v1/") :]
        return await self._forward(model, UpstreamRequest(path, headers, body, self._router.timeout_s))

    async def _forward(self, model: str, upstream: UpstreamRequest) -> Response:
        """Select an instance of `model`, relay its answer, record the outcome when the relay ends."""
        timing = Timing()
        try:
            installed, variant = self._router.select(model, None)
        except ApiError as exc:
            return _error_for(exc, model)
        route = installed.route
        instances = max(1, len(variant.instances))

        def record(outcome: Outcome) -> None:
            if timing.model_started is not None and timing.model_ended is None:
                timing.model_ended = time.perf_counter()
            self._metrics.record(route.name, variant.name, outcome, timing, instances)

        try:
            answer = await self._router.open_stream(route, variant, upstream, timing)
        except (ApiError, UpstreamError) as exc:
            if isinstance(exc, UpstreamError):
                record(Outcome(502, model_status=0))
            else:
                record(Outcome(exc.status, throttled=isinstance(exc, Throttled)))
            return _error_for(exc, model)
        status = answer.answer.status_code

        def done(broke: bool) -> None:
            model_status = 0 if broke else (status if status >= 300 else None)
            record(Outcome(status, model_status=model_status))

        # the worker's own answer, errors included, is relayed as it is (it speaks OpenAI's shapes)
        out_headers = {h: answer.answer.headers[h] for h in RELAYED_HEADERS if h in answer.answer.headers}
        if timing.cold_start_s:
            out_headers[COLD_START_HEADER] = f"{timing.cold_start_s:.3f}"
        return StreamingResponse(_relay(answer, route.name, done), status_code=status, headers=out_headers)


def _parse(body: bytes) -> dict[str, Any] | Response:
    try:
        parsed = json_guard.loads(body)
    except json_guard.NotJson as exc:
        return openai_error(400, f"The body is not valid JSON: {exc}")
    except json_guard.UnsafeJson as exc:
        return openai_error(400, exc.message, param=exc.path or None)
    if not isinstance(parsed, dict):
        return openai_error(400, "The body must be a JSON object.")
    return parsed
