"""Handler mode's HTTP surface: GET /ping, POST /invocations and GET /metrics (Starlette), and the model load at
startup.

/ping is 503 while the model loads, after it failed to load, and while the handler thread is stuck in a call
past its option.predict_timeout (health.handler_health), so the control plane replaces a hung instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from modelhost.contracts.worker import (
    CHAT_COMPLETIONS_PATH,
    COMPLETIONS_PATH,
    INVOCATIONS_PATH,
    METRICS_PATH,
    PING_PATH,
    STREAM_HEADER,
)
from modelhost.worker.handler.batching import BatchPolicy
from modelhost.worker.handler.codec import (
    has_stream,
    header_pairs,
    output_headers,
    output_to_answer,
    request_to_input,
)
from modelhost.worker.handler.dispatcher import Dispatcher, QueueFull, Reply
from modelhost.worker.handler.entry_point import EntryPointError
from modelhost.worker.handler.metrics import HandlerMetrics
from modelhost.worker.handler.service import HandlerService, LoadRefused
from modelhost.worker.handler.streaming import stream_chunks
from modelhost.worker.handler.thread import HandlerThread, HandlerTimeout
from modelhost.worker.health import Health, handler_health
from modelhost.worker.metrics import metrics_route, worker_registry

log = logging.getLogger(__name__)


@dataclass
class WorkerState:
    """What /ping reports."""

    ready: bool = False  # the init call succeeded
    failure: str | None = None  # why loading failed, once it has
    healthy: bool = True  # what the last /ping said once ready (to log changes)


def load_failure_reason(exc: BaseException, loading_timeout_s: float) -> str:
    """FailureRecord.reason: our own errors as they read, the user's as their traceback's last line."""
    if isinstance(exc, HandlerTimeout):
        return f"model loading did not finish within {loading_timeout_s:g} s (option.model_loading_timeout)"
    if isinstance(exc, (EntryPointError, LoadRefused)):
        return str(exc)
    return traceback.format_exception_only(exc)[-1].strip()


class _AfterSend:
    """Wraps a response so that, once it has been sent (or abandoned), the dispatcher learns it (the reply is
    released) and the request is recorded with its status."""

    def __init__(self, response: Response, reply: Reply | None, record: Callable[[int], None]) -> None:
        self.response = response
        self.reply = reply
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            if self.reply is not None:
                self.reply.release()
            self.record(self.response.status_code)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status)


class WorkerEndpoints:
    """The routes and the startup load of one worker; create_app wires them into Starlette."""

    def __init__(
        self,
        service: HandlerService,
        thread: HandlerThread,
        on_load_failure: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        properties = service.properties
        self.service = service
        self.thread = thread
        self.on_load_failure = on_load_failure
        self.clock = clock
        self.state = WorkerState()
        self.registry = registry if registry is not None else worker_registry()
        self.metrics = HandlerMetrics(self.registry)
        self.dispatcher = Dispatcher(
            service.invoke,
            thread,
            BatchPolicy(properties.batch_size, properties.max_batch_delay_ms),
            properties.predict_timeout_s,
            service.engine_properties,
            max_queue=int(properties.model_properties.get("job_queue_size") or 1000),
            clock=clock,
        )

    async def load_and_dispatch(self) -> None:
        """Import and initialise the model on the handler thread, then feed it requests until cancelled."""
        started = self.clock()
        timeout_s = self.service.properties.model_loading_timeout_s
        try:
            await self.thread.run(self.service.load, timeout_s=timeout_s)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.state.failure = load_failure_reason(exc, timeout_s)
            show_traceback = not isinstance(exc, (HandlerTimeout, EntryPointError, LoadRefused))
            log.error("model failed to load: %s", self.state.failure, exc_info=exc if show_traceback else None)
            self.on_load_failure(self.state.failure)
            return
        self.state.ready = True
        log.info(
            "model loaded in %.1f s; serving (batch_size=%d)",
            self.clock() - started,
            self.service.properties.batch_size,
        )
        await self.dispatcher.run()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self.load_and_dispatch(), name="load-and-dispatch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.thread.stop()

    def health(self) -> Health:
        """Serving, unless the handler thread is stuck in a call past its deadline (see health.py)."""
        busy = self.thread.busy()
        now_s = self.thread.clock()
        return handler_health(busy.started_s, busy.timeout_s, now_s) if busy else handler_health(None, None, now_s)

    async def ping(self, request: Request) -> Response:
        if self.state.ready:
            health = self.health()
            if health.healthy != self.state.healthy:  # log the changes, not every ping
                self.state.healthy = health.healthy
                level = logging.INFO if health.healthy else logging.ERROR
                log.log(level, "/ping: %s", health.reason or "healthy again")
            return JSONResponse(health.body(), status_code=200 if health.healthy else 503)
        if self.state.failure is not None:
            return _error(503, f"model failed to load: {self.state.failure}")
        return _error(503, "model is loading")

    async def invocations(self, request: Request) -> Any:
        started_s = self.clock()

        def record(status: int) -> None:
            self.metrics.record(status, self.clock() - started_s)

        try:
            response, reply = await self._invoke(request)
        except Exception:
            record(500)  # Starlette answers 500 for what escapes here
            raise
        return _AfterSend(response, reply, record)

    async def _invoke(self, request: Request) -> tuple[Response, Reply | None]:
        if not self.state.ready:
            return _error(503, "model is not loaded"), None
        body = await request.body()
        try:
            # the router's stream request header is for engine mode; a handler streams when its Output does
            headers = [(k, v) for k, v in header_pairs(request.headers.raw) if k.lower() != STREAM_HEADER]
            inputs = request_to_input(headers, request.query_params.multi_items(), body)
        except ValueError as exc:
            return _error(400, f"cannot parse the request: {exc}"), None
        try:
            reply = await self.dispatcher.submit(inputs)
        except QueueFull as exc:
            return _error(503, str(exc)), None
        try:
            return self._response(reply), reply
        except BaseException:
            reply.release()
            raise

    def _response(self, reply: Reply) -> Response:
        output = reply.output
        if output is not None and has_stream(output):
            chunks = stream_chunks(output, self.thread, self.service.properties.predict_timeout_s)
            headers = dict(output_headers(output))
            return StreamingResponse(chunks, status_code=int(output.code), headers=headers)
        answer = output_to_answer(output)
        return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))


async def openai_refused(request: Request) -> Response:
    """OpenAI routes on a handler-mode worker: a clear 400 in OpenAI's error shape."""
    message = (
        "This endpoint runs a custom handler (model.py), which defines its own request format; the "
        "OpenAI-compatible API is served for models that modelhost's built-in engine runs (a model folder "
        "with option.model_id and no model.py). Use InvokeEndpoint with the handler's format instead."
    )
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "custom_handler"}}
    return JSONResponse(body, status_code=400)


def create_app(
    service: HandlerService,
    thread: HandlerThread,
    on_load_failure: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """The ASGI app. Loading starts with the app; a failed load calls `on_load_failure(reason)`. `registry` is
    the worker's Prometheus registry (a fresh one when None)."""
    endpoints = WorkerEndpoints(service, thread, on_load_failure, clock, registry)
    routes = [
        Route(PING_PATH, endpoints.ping, methods=["GET"]),
        Route(INVOCATIONS_PATH, endpoints.invocations, methods=["POST"]),
        Route(METRICS_PATH, metrics_route(endpoints.registry), methods=["GET"]),
        Route(CHAT_COMPLETIONS_PATH, openai_refused, methods=["POST"]),
        Route(COMPLETIONS_PATH, openai_refused, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=endpoints.lifespan)
