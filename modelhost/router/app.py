"""The sagemaker-runtime edge: `POST /endpoints/{name}/invocations` forwarded to a worker,
`.../invocations-response-stream` relayed as AWS event-stream PayloadParts, and `.../async-invocations`
(InvokeEndpointAsync) queued durably for the async dispatcher (modelhost/async_inference/).

Errors use rest-json's form: the code in `X-Amzn-ErrorType`, the message (and ModelError's members) in the
JSON body, as boto3 parses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from modelhost import ids
from modelhost.async_inference.intake import MAX_INLINE_BODY_BYTES, AsyncIntake, parse_invocation
from modelhost.auth import authenticate, authorize, wire_request
from modelhost.contracts.worker import INVOCATIONS_PATH, STREAM_HEADER
from modelhost.errors import ApiError, ClientGone, ModelError, PayloadTooLarge, RuntimeValidationError, Throttled
from modelhost.http_body import BodyTooLarge, printable_ascii, read_limited
from modelhost.monitoring.invocations import InvocationMetrics, Outcome, Timing
from modelhost.router import eventstream
from modelhost.router.cache import CachedResponse, RequestKey, ResultCache, is_deterministic
from modelhost.router.forward import (
    InvocationRouter,
    LeasedStream,
    UpstreamBroken,
    UpstreamError,
    UpstreamRequest,
    UpstreamTimeout,
    failure_message,
)
from modelhost.router.table import EndpointRoute, InstalledRoute, VariantRoute
from modelhost.security import actions
from modelhost.settings import ServerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

RUNTIME_PATH = re.compile(
    r"^/endpoints/(?P<name>[^/]+)/(?P<op>invocations|invocations-response-stream|async-invocations)$"
)
FORWARDED_HEADERS = (
    "content-type",
    "accept",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-target-model",
    "x-amzn-sagemaker-inference-id",
)
RETURNED_HEADERS = ("content-type", "x-amzn-sagemaker-custom-attributes")
# InvokeEndpointWithResponseStream's request headers that reach the worker (X-Amzn-SageMaker-Accept → Accept).
STREAM_FORWARDED_HEADERS = ("content-type", "x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-inference-id")
EVENT_STREAM_MEDIA_TYPE = "application/vnd.amazon.eventstream"
CACHE_HEADER = "X-Modelhost-Cache"  # hit | miss | bypass, on endpoints that opted into the result cache
COLD_START_HEADER = "X-Modelhost-Cold-Start-Seconds"  # how long the request waited for a start from zero


@dataclass(slots=True)
class Call:
    """What the metrics need of one request, filled in as it goes (the endpoint once it is known)."""

    timing: Timing = field(default_factory=Timing)
    endpoint: str | None = None
    variant: str = ""
    instances: int = 1
    cache: str | None = None


def outcome_of_error(error: ApiError) -> Outcome:
    if isinstance(error, ModelError):
        return Outcome(error.status, model_status=error.original_status)
    return Outcome(error.status, throttled=isinstance(error, Throttled))


async def _relay_events(
    answer: LeasedStream, endpoint_name: str, timeout_s: float, done: Callable[[Outcome], None] | None = None
) -> AsyncIterator[bytes]:
    """The worker's body as PayloadPart events; a broken or stalled worker ends the stream with a
    ModelStreamError event. The upstream answer is closed however the relay ends (client gone included),
    so the worker sees the disconnect and frees the request's slot. `done` gets the request's outcome."""
    outcome = Outcome(200)
    try:
        async for chunk in answer.answer.chunks():
            yield eventstream.payload_part(chunk)
    except UpstreamTimeout:
        log.warning("stream from %s stalled for %g s", answer.instance_id, timeout_s)
        outcome = Outcome(200, model_status=0)
        yield eventstream.model_stream_error(
            f"Your invocation timed out while waiting for the next part of the response from container primary "
            f"(no data for {timeout_s:g} s).",
            "ModelInvocationTimeExceeded",
        )
    except UpstreamBroken as exc:
        log.warning("stream from %s broke: %s", answer.instance_id, exc)
        outcome = Outcome(200, model_status=0)
        yield eventstream.model_stream_error(
            f"The response stream from container primary broke before it was complete ({exc}). "
            f"See the endpoint's log (modelhost logs {endpoint_name}) for more information.",
            "StreamBroken",
        )
    finally:
        await answer.aclose()
        if done is not None:
            done(outcome)


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work` unless the client disconnects first; then cancel it, closing the connection to the worker,
    which aborts the request's generation there."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise ClientGone("the client disconnected before the answer")


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


# Headers whose values reach the worker or choose the variant: SageMaker takes visible US-ASCII only.
CHECKED_HEADERS = (*FORWARDED_HEADERS, "x-amzn-sagemaker-accept", "x-amzn-sagemaker-target-variant")


def check_header_values(request: Request) -> None:
    """RuntimeValidationError (400) for a forwarded header whose value the worker request cannot carry."""
    for name in CHECKED_HEADERS:
        value = request.headers.get(name)
        if value is not None and not printable_ascii(value):
            raise RuntimeValidationError(f"The {name} header must hold printable US-ASCII characters only.")


def runtime_error_response(error: ApiError, request_id: str) -> Response:
    body = {"message": error.message, **error.extra_fields()}
    headers = {"X-Amzn-ErrorType": error.code, "x-amzn-RequestId": request_id}
    if isinstance(error, Throttled) and error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    return Response(json.dumps(body), status_code=error.status, media_type="application/json", headers=headers)


def cold_start_headers(timing: Timing) -> dict[str, str]:
    """The answer's note that it waited for its variant to start from zero, and for how long."""
    return {COLD_START_HEADER: f"{timing.cold_start_s:.3f}"} if timing.cold_start_s else {}


class RuntimeApi:
    def __init__(
        self,
        settings: ServerSettings,
        router: InvocationRouter,
        cache: ResultCache,
        metrics: InvocationMetrics,
        async_intake: AsyncIntake | None = None,
    ) -> None:
        self._settings = settings
        self._router = router
        self._cache = cache
        self._metrics = metrics
        self._async_intake = async_intake

    def _record(self, call: Call, outcome: Outcome) -> None:
        if call.timing.model_started is not None and call.timing.model_ended is None:
            call.timing.model_ended = time.perf_counter()  # an answer that ended in an error
        if call.endpoint is not None:
            self._metrics.record(call.endpoint, call.variant, outcome, call.timing, call.instances)

    async def handle(self, request: Request) -> Response:
        request_id = ids.request_id()
        call = Call()
        try:
            response = await self._invoke(request, request_id, call)
        except ApiError as exc:
            self._record(call, outcome_of_error(exc))
            return runtime_error_response(exc, request_id)
        except Exception:
            log.exception("internal error on %s", request.url.path)
            self._record(call, Outcome(500))
            return runtime_error_response(
                ApiError("An internal error occurred; see the server log.", code="InternalFailure", status=500),
                request_id,
            )
        if not isinstance(response, StreamingResponse):  # a stream is recorded when it ends
            self._record(call, Outcome(response.status_code, cache=call.cache))
        return response

    async def _invoke(self, request: Request, request_id: str, call: Call) -> Response:
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?")[0]
        match = RUNTIME_PATH.match(raw_path)
        if match is None or (match.group("op") == "async-invocations" and self._async_intake is None):
            raise RuntimeValidationError(f"modelhost does not serve {request.method} {raw_path} yet.")
        name = unquote(match.group("name"))
        check_header_values(request)
        if match.group("op") == "async-invocations":
            return await self._invoke_async(request, request_id, name)
        try:
            body = await read_limited(request, self._settings.max_payload_bytes)
        except BodyTooLarge as exc:
            raise PayloadTooLarge(f"{exc} of InvokeEndpoint.") from None
        caller = authenticate(wire_request(request.method, request.scope, request.headers.raw, body), self._settings)
        operation = "InvokeEndpointWithResponseStream" if match.group("op") != "invocations" else "InvokeEndpoint"
        resource = actions.endpoint_resource(name, region=caller.region, account_id=self._settings.account_id)
        authorize(caller, operation, resource, self._settings)
        call.endpoint = self._router.resolve(name).route.name
        installed, variant = self._router.select(name, request.headers.get("x-amzn-sagemaker-target-variant"))
        call.variant, call.instances = variant.name, max(1, len(variant.instances))
        if match.group("op") == "invocations-response-stream":
            return await self._invoke_stream(request, request_id, body, installed.route, variant, caller.region, call)
        key = self._cache_key(request, installed, body)
        cached = self._cache.get(key) if key is not None else None
        if key is not None:
            call.cache = "hit" if cached is not None else "miss"
        if cached is not None:
            headers = {**dict(cached.headers), "x-Amzn-Invoked-Production-Variant": cached.variant}
            headers.update({CACHE_HEADER: "hit", "x-amzn-RequestId": request_id})
            return Response(cached.body, status_code=cached.status, headers=headers)
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        route = installed.route
        try:
            upstream = await until_disconnected(
                request, self._router.send(route, variant, self._upstream_request(headers, body), call.timing)
            )
        except UpstreamError as exc:
            raise self._forward_error(exc, route, caller.region) from exc
        if upstream.status_code >= 300:
            raise self._model_error(route, caller.region, upstream.status_code, upstream.text)
        returned = tuple((h, upstream.headers[h]) for h in RETURNED_HEADERS if h in upstream.headers)
        out_headers = {
            **dict(returned),
            "x-Amzn-Invoked-Production-Variant": variant.name,
            "x-amzn-RequestId": request_id,
            **cold_start_headers(call.timing),
        }
        if key is not None:
            out_headers[CACHE_HEADER] = "miss"
            answer = CachedResponse(upstream.status_code, upstream.content, returned, variant.name, time.monotonic())
            self._cache.put(key, answer, route.cache_ttl_s)
        elif route.cache_mode != "off":
            out_headers[CACHE_HEADER] = "bypass"  # not deterministic, and the endpoint caches only what is
        return Response(upstream.content, status_code=upstream.status_code, headers=out_headers)

    async def _invoke_async(self, request: Request, request_id: str, name: str) -> Response:
        """InvokeEndpointAsync: checked, authorized as InvokeEndpoint is, recorded in the store, then 202."""
        assert self._async_intake is not None
        try:
            body = await read_limited(request, MAX_INLINE_BODY_BYTES)
        except BodyTooLarge as exc:
            raise RuntimeValidationError(
                f"{exc} of InvokeEndpointAsync's inline Body; put larger inputs in S3 and pass InputLocation."
            ) from None
        caller = authenticate(wire_request(request.method, request.scope, request.headers.raw, body), self._settings)
        resource = actions.endpoint_resource(name, region=caller.region, account_id=self._settings.account_id)
        authorize(caller, "InvokeEndpointAsync", resource, self._settings)
        invocation = parse_invocation(request.headers, body)
        queued = await self._async_intake.accept(name, invocation, caller.region)
        headers = {"X-Amzn-SageMaker-OutputLocation": queued.output_location, "x-amzn-RequestId": request_id}
        if queued.failure_location is not None:
            headers["X-Amzn-SageMaker-FailureLocation"] = queued.failure_location
        content = json.dumps({"InferenceId": queued.inference_id})
        return Response(content, status_code=202, media_type="application/json", headers=headers)

    def _upstream_request(self, headers: dict[str, str], body: bytes) -> UpstreamRequest:
        return UpstreamRequest(INVOCATIONS_PATH, headers, body, self._settings.invocation_timeout_s)

    def _cache_key(self, request: Request, installed: InstalledRoute, body: bytes) -> RequestKey | None:
        """The request's cache key when the endpoint caches it; None when it must reach a worker."""
        route = installed.route
        if route.cache_mode == "off" or (route.cache_mode == "deterministic" and not is_deterministic(body)):
            return None
        h = request.headers
        return RequestKey(
            endpoint=route.name,
            generation=installed.generation,
            body=body,
            content_type=h.get("content-type", ""),
            accept=h.get("accept", ""),
            custom_attributes=h.get("x-amzn-sagemaker-custom-attributes", ""),
            target_variant=h.get("x-amzn-sagemaker-target-variant", ""),
        )

    async def _invoke_stream(
        self,
        request: Request,
        request_id: str,
        body: bytes,
        route: EndpointRoute,
        variant: VariantRoute,
        region: str,
        call: Call,
    ) -> Response:
        """InvokeEndpointWithResponseStream: each piece of the worker's body becomes a PayloadPart as it
        arrives; a failure before the first byte is a normal ModelError, after it a ModelStreamError event."""
        headers = {h: request.headers[h] for h in STREAM_FORWARDED_HEADERS if h in request.headers}
        if "x-amzn-sagemaker-accept" in request.headers:
            headers["accept"] = request.headers["x-amzn-sagemaker-accept"]
        headers[STREAM_HEADER] = "true"  # engine-mode workers stream whatever the body says, as LMI does
        try:
            answer = await self._router.open_stream(route, variant, self._upstream_request(headers, body), call.timing)
        except UpstreamError as exc:
            raise self._forward_error(exc, route, region) from exc
        upstream = answer.answer
        if upstream.status_code >= 300:
            try:
                text = await upstream.read_text()
            finally:
                await answer.aclose()
            raise self._model_error(route, region, upstream.status_code, text)
        out_headers = {
            "X-Amzn-SageMaker-Content-Type": upstream.headers.get("content-type", "application/octet-stream"),
            "x-Amzn-Invoked-Production-Variant": variant.name,
            "x-amzn-RequestId": request_id,
            **cold_start_headers(call.timing),
        }
        if "x-amzn-sagemaker-custom-attributes" in upstream.headers:
            out_headers["X-Amzn-SageMaker-Custom-Attributes"] = upstream.headers["x-amzn-sagemaker-custom-attributes"]

        def done(outcome: Outcome) -> None:
            call.timing.model_ended = time.perf_counter()
            self._record(call, outcome)

        return StreamingResponse(
            _relay_events(answer, route.name, self._settings.invocation_timeout_s, done),
            media_type=EVENT_STREAM_MEDIA_TYPE,
            headers=out_headers,
        )

    # the one mapping of forwarding failures to sagemaker-runtime errors ------------------------
    def _forward_error(self, error: UpstreamError, route: EndpointRoute, region: str) -> ModelError:
        """UpstreamGone (on the last instance tried), UpstreamBroken, UpstreamTimeout → ModelError (424)."""
        original = "invocation timed out" if isinstance(error, UpstreamTimeout) else str(error)
        return ModelError(
            failure_message(error, route.name),
            original_status=0,
            original_message=original,
            log_stream_arn=self._log_arn(route, region),
        )

    def _model_error(self, route: EndpointRoute, region: str, status: int, text: str) -> ModelError:
        """The worker answered with a non-2xx status."""
        kind = "client" if status < 500 else "server"
        return ModelError(
            f'Received {kind} error ({status}) from primary with message "{text}". '
            f"See the endpoint's log (modelhost logs {route.name}) for more information.",
            original_status=status,
            original_message=text,
            log_stream_arn=self._log_arn(route, region),
        )

    def _log_arn(self, route: EndpointRoute, region: str) -> str:
        return f"arn:aws:logs:{region}:{self._settings.account_id}:log-group:{route.log_group}"
