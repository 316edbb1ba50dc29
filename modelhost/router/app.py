"""The sagemaker-runtime edge: `POST /endpoints/{name}/invocations` forwarded to a worker, and
`.../invocations-response-stream` relayed as AWS event-stream PayloadParts.

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
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from modelhost import ids
from modelhost.auth import authenticate
from modelhost.errors import (
    ApiError,
    ModelError,
    PayloadTooLarge,
    RuntimeValidationError,
    ServiceUnavailable,
)
from modelhost.router import eventstream
from modelhost.router.admission import Admission, Lease
from modelhost.router.cache import CachedResponse, RequestKey, ResultCache, is_deterministic
from modelhost.router.table import EndpointRoute, InstanceRoute, NoVariant, RoutingTable, VariantRoute
from modelhost.router.upstream import UpstreamBroken, UpstreamGone, UpstreamPool, UpstreamResponse
from modelhost.settings import ServerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

RUNTIME_PATH = re.compile(
    r"^(?P<prefix>.*)/endpoints/(?P<name>[^/]+)/(?P<op>invocations|invocations-response-stream|async-invocations)$"
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
STREAM_HEADER = "x-modelhost-stream"  # asks an engine-mode worker to stream (the worker honours it)
EVENT_STREAM_MEDIA_TYPE = "application/vnd.amazon.eventstream"
CACHE_HEADER = "X-Modelhost-Cache"  # hit | miss | bypass, on endpoints that opted into the result cache


async def _relay_events(
    upstream: httpx.Response, lease: Lease, endpoint_name: str, timeout_s: float
) -> AsyncIterator[bytes]:
    """The worker's body as PayloadPart events; a broken or stalled worker ends the stream with a
    ModelStreamError event. The upstream response is closed however the relay ends (client gone included),
    so the worker sees the disconnect and frees the request's slot."""
    try:
        async for chunk in upstream.aiter_raw():
            if chunk:
                yield eventstream.payload_part(chunk)
    except httpx.TimeoutException:
        log.warning("stream from %s stalled for %g s", lease.instance.instance_id, timeout_s)
        yield eventstream.model_stream_error(
            f"Your invocation timed out while waiting for the next part of the response from container primary "
            f"(no data for {timeout_s:g} s).",
            "ModelInvocationTimeExceeded",
        )
    except httpx.HTTPError as exc:
        log.warning("stream from %s broke: %s", lease.instance.instance_id, exc)
        yield eventstream.model_stream_error(
            f"The response stream from container primary broke before it was complete ({exc}). "
            f"See the endpoint's log (modelhost logs {endpoint_name}) for more information.",
            "StreamBroken",
        )
    finally:
        lease.release()
        with anyio.CancelScope(shield=True):
            await upstream.aclose()


class ClientGone(ApiError):
    """The caller went away before the answer; its work upstream was cancelled (nobody reads this)."""

    code = "ClientClosedRequest"
    status = 499


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


class InstanceGone(Exception):
    """The chosen instance refused the connection or closed it without answering."""


def runtime_error_response(error: ApiError, request_id: str) -> Response:
    body = {"message": error.message, **error.extra_fields()}
    return Response(
        json.dumps(body),
        status_code=error.status,
        media_type="application/json",
        headers={"X-Amzn-ErrorType": error.code, "x-amzn-RequestId": request_id},
    )


class RuntimeApi:
    def __init__(
        self,
        settings: ServerSettings,
        table: RoutingTable,
        endpoint_status: Callable[[str], str | None],
        client: httpx.AsyncClient,
        admission: Admission,
        cache: ResultCache,
    ) -> None:
        self._cache = cache
        self._pool = UpstreamPool()
        self._settings = settings
        self._table = table
        self._admission = admission
        self._endpoint_status = endpoint_status  # store lookup: name -> EndpointStatus or None
        self._client = client

    def close(self) -> None:
        self._pool.close()

    async def handle(self, request: Request) -> Response:
        request_id = ids.request_id()
        try:
            return await self._invoke(request, request_id)
        except ApiError as exc:
            return runtime_error_response(exc, request_id)
        except Exception:
            log.exception("internal error on %s", request.url.path)
            return runtime_error_response(
                ApiError("An internal error occurred; see the server log.", code="InternalFailure", status=500),
                request_id,
            )

    def _route(self, name: str, region: str) -> EndpointRoute:
        route = self._table.get(name)
        if route is not None:
            return route
        status = self._endpoint_status(name)
        account = self._settings.account_id
        if status is None:
            raise RuntimeValidationError(f"Endpoint {name} of account {account} not found.")
        if status == "InService":  # the instances are (re)starting, e.g. right after a server restart
            raise ServiceUnavailable(f"Endpoint {name} has no instance ready yet; retry shortly.")
        raise RuntimeValidationError(
            f"Endpoint {name} of account {account} is not in service (status: {status}); "
            "only InService endpoints can be invoked."
        )

    def select(self, name: str, region: str, target_variant: str | None) -> tuple[EndpointRoute, VariantRoute]:
        """The endpoint's route and a variant (the caller's TargetVariant, else drawn by weight).
        Raises RuntimeValidationError / ServiceUnavailable in SageMaker's words."""
        route = self._route(name, region)
        try:
            variant = self._table.choose_variant(route, target_variant)
        except NoVariant as exc:
            raise RuntimeValidationError(
                f"The TargetVariant '{exc}' does not exist on endpoint {name}; "
                f"variants: {', '.join(v.name for v in route.variants)}."
            ) from exc
        return route, variant

    async def _invoke(self, request: Request, request_id: str) -> Response:
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?")[0]
        match = RUNTIME_PATH.match(raw_path)
        if match is None or match.group("op") not in ("invocations", "invocations-response-stream"):
            raise RuntimeValidationError(f"modelhost does not serve {request.method} {raw_path} yet.")
        name = unquote(match.group("name"))
        caller = authenticate(request.headers, self._settings.region)
        body = await request.body()
        if len(body) > self._settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"Request body of {len(body)} bytes exceeds the {self._settings.max_payload_bytes}-byte limit "
                "of InvokeEndpoint."
            )
        route, variant = self.select(name, caller.region, request.headers.get("x-amzn-sagemaker-target-variant"))
        if match.group("op") == "invocations-response-stream":
            return await self._invoke_stream(request, request_id, body, route, variant, caller.region)
        key = self._cache_key(request, route, body)
        cached = self._cache.get(key) if key is not None else None
        if cached is not None:
            headers = {**dict(cached.headers), "x-Amzn-Invoked-Production-Variant": cached.variant}
            headers.update({CACHE_HEADER: "hit", "x-amzn-RequestId": request_id})
            return Response(cached.body, status_code=cached.status, headers=headers)
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        forward = self.forward_with_retry(variant, body, headers, route, caller.region)
        _, upstream = await until_disconnected(request, forward)
        returned = tuple((h, upstream.headers[h]) for h in RETURNED_HEADERS if h in upstream.headers)
        out_headers = {
            **dict(returned),
            "x-Amzn-Invoked-Production-Variant": variant.name,
            "x-amzn-RequestId": request_id,
        }
        if key is not None:
            out_headers[CACHE_HEADER] = "miss"
            answer = CachedResponse(upstream.status_code, upstream.content, returned, variant.name, time.monotonic())
            self._cache.put(key, answer, route.cache_ttl_s)
        elif route.cache_mode != "off":
            out_headers[CACHE_HEADER] = "bypass"  # not deterministic, and the endpoint caches only what is
        return Response(upstream.content, status_code=upstream.status_code, headers=out_headers)

    def _cache_key(self, request: Request, route: EndpointRoute, body: bytes) -> RequestKey | None:
        """The request's cache key when the endpoint caches it; None when it must reach a worker."""
        if route.cache_mode == "off" or (route.cache_mode == "deterministic" and not is_deterministic(body)):
            return None
        h = request.headers
        return RequestKey(
            endpoint=route.name,
            generation=route.generation,
            body=body,
            content_type=h.get("content-type", ""),
            accept=h.get("accept", ""),
            custom_attributes=h.get("x-amzn-sagemaker-custom-attributes", ""),
            target_variant=h.get("x-amzn-sagemaker-target-variant", ""),
        )

    async def _invoke_stream(
        self, request: Request, request_id: str, body: bytes, route: EndpointRoute, variant: VariantRoute, region: str
    ) -> Response:
        """InvokeEndpointWithResponseStream: each piece of the worker's body becomes a PayloadPart as it
        arrives; a failure before the first byte is a normal ModelError, after it a ModelStreamError event."""
        headers = {h: request.headers[h] for h in STREAM_FORWARDED_HEADERS if h in request.headers}
        if "x-amzn-sagemaker-accept" in request.headers:
            headers["accept"] = request.headers["x-amzn-sagemaker-accept"]
        headers[STREAM_HEADER] = "true"  # engine-mode workers stream whatever the body says, as LMI does
        lease, upstream = await self.forward_with_retry(variant, body, headers, route, region, stream=True)
        out_headers = {
            "X-Amzn-SageMaker-Content-Type": upstream.headers.get("content-type", "application/octet-stream"),
            "x-Amzn-Invoked-Production-Variant": variant.name,
            "x-amzn-RequestId": request_id,
        }
        if "x-amzn-sagemaker-custom-attributes" in upstream.headers:
            out_headers["X-Amzn-SageMaker-Custom-Attributes"] = upstream.headers["x-amzn-sagemaker-custom-attributes"]
        return StreamingResponse(
            _relay_events(upstream, lease, route.name, self._settings.invocation_timeout_s),
            media_type=EVENT_STREAM_MEDIA_TYPE,
            headers=out_headers,
        )

    async def forward_with_retry(
        self,
        variant: VariantRoute,
        body: bytes,
        headers: dict[str, str],
        route: EndpointRoute,
        region: str,
        *,
        path: str = "/invocations",
        stream: bool = False,
        model_errors: bool = True,
    ) -> tuple[Lease, Any]:
        """Forward to the least-busy instance under its concurrency limit (waiting in the bounded queue when all
        are full); if the instance is gone before answering, drop it and try one other.

        With `stream`, only the status and headers have been read and the caller holds the lease (the instance's
        slot) until it closes the response. With `model_errors`, a non-2xx answer raises ModelError; without, it
        is returned as is (the OpenAI routes relay the worker's own error)."""
        tried: set[str] = set()
        for attempt in range(2):
            lease = await self._admission.acquire(route.name, variant, tried, self._settings.invocation_timeout_s)
            if lease is None:
                raise ServiceUnavailable(
                    f"Variant {variant.name} of endpoint {route.name} has no instance ready; retry shortly."
                )
            instance = lease.instance
            tried.add(instance.instance_id)
            try:
                response = await self._forward(
                    instance,
                    body,
                    headers,
                    route,
                    region,
                    last_attempt=attempt == 1,
                    path=path,
                    stream=stream,
                    model_errors=model_errors,
                )
            except InstanceGone:
                lease.release()
                log.warning("instance %s of %s went away; retrying elsewhere", instance.instance_id, route.name)
                self._table.drop_instance(route.name, instance.instance_id)
                continue
            except BaseException:
                lease.release()
                raise
            if not stream:
                lease.release()
            return lease, response
        raise AssertionError("unreachable")

    async def _forward(
        self,
        instance: InstanceRoute,
        body: bytes,
        headers: dict[str, str],
        route: EndpointRoute,
        region: str,
        *,
        last_attempt: bool,
        path: str = "/invocations",
        stream: bool = False,
        model_errors: bool = True,
    ) -> httpx.Response | UpstreamResponse:
        if not stream:
            return await self._post(
                instance, body, headers, route, region, last_attempt=last_attempt, path=path, model_errors=model_errors
            )
        try:
            upstream_request = self._client.build_request(
                "POST",
                f"{instance.url}{path}",
                content=body,
                headers=headers,
                timeout=self._settings.invocation_timeout_s,
            )
            response = await self._client.send(upstream_request, stream=stream)
            if model_errors and response.status_code >= 300:
                if stream:
                    try:
                        await response.aread()
                    except httpx.HTTPError:
                        pass
                    finally:
                        await response.aclose()
                raise self._model_error(route, region, response.status_code, response.text)
            return response
        except httpx.TimeoutException as exc:
            raise self._timeout_error(route, region) from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if not last_attempt:  # the worker died (or reset a kept-alive connection) before answering: send again
                raise InstanceGone(instance.instance_id) from exc
            raise self._gone_error(route, region, exc) from exc
        except httpx.HTTPError as exc:
            raise ModelError(
                f'Received server error (0) from primary with message "the instance did not answer: {exc}". '
                f"See the endpoint's log (modelhost logs {route.name}) for more information.",
                original_status=0,
                original_message=str(exc),
                log_stream_arn=self._log_arn(route, region),
            ) from exc

    async def _post(
        self,
        instance: InstanceRoute,
        body: bytes,
        headers: dict[str, str],
        route: EndpointRoute,
        region: str,
        *,
        last_attempt: bool,
        path: str,
        model_errors: bool,
    ) -> UpstreamResponse:
        """A whole (non-streaming) answer through the keep-alive pool; the same errors as the httpx path."""
        target = urlsplit(instance.url)
        try:
            response = await self._pool.post(
                target.hostname or "127.0.0.1",
                target.port or 80,
                path,
                headers,
                body,
                self._settings.invocation_timeout_s,
            )
        except TimeoutError as exc:
            raise self._timeout_error(route, region) from exc
        except UpstreamGone as exc:
            if not last_attempt:  # nothing was answered: the request is safe to send again elsewhere
                raise InstanceGone(instance.instance_id) from exc
            raise self._gone_error(route, region, exc) from exc
        except UpstreamBroken as exc:
            raise self._gone_error(route, region, exc) from exc
        if model_errors and response.status_code >= 300:
            raise self._model_error(route, region, response.status_code, response.text)
        return response

    def _timeout_error(self, route: EndpointRoute, region: str) -> ModelError:
        return ModelError(
            'Received server error (0) from primary with message "Your invocation timed out while waiting for '
            "a response from container primary. Review the latency metrics for each container, resolve the "
            'issue, and try again."',
            original_status=0,
            original_message="invocation timed out",
            log_stream_arn=self._log_arn(route, region),
        )

    def _gone_error(self, route: EndpointRoute, region: str, exc: Exception) -> ModelError:
        return ModelError(
            f'Received server error (0) from primary with message "the instance went away: {exc!r}". '
            f"See the endpoint's log (modelhost logs {route.name}) for more information.",
            original_status=0,
            original_message=repr(exc),
            log_stream_arn=self._log_arn(route, region),
        )

    def _log_arn(self, route: EndpointRoute, region: str) -> str:
        return f"arn:aws:logs:{region}:{self._settings.account_id}:log-group:{route.log_group}"

    def _model_error(self, route: EndpointRoute, region: str, status: int, text: str) -> ModelError:
        kind = "client" if status < 500 else "server"
        return ModelError(
            f'Received {kind} error ({status}) from primary with message "{text}". '
            f"See the endpoint's log (modelhost logs {route.name}) for more information.",
            original_status=status,
            original_message=text,
            log_stream_arn=self._log_arn(route, region),
        )
