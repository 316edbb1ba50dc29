"""The worker's HTTP surface in engine mode: /ping, /invocations (LMI or TGI schema, or a chat),
/v1/chat/completions, /v1/completions, /v1/models, /_modelhost/stats and /metrics, over the engine's Backend.

Loading (`Backend.start`) runs behind /ping (503 until it is done); once serving, /ping is 503 while one engine
step has run far longer than any step should (health.engine_health), so a stuck engine gets replaced. A
client that goes away aborts its generation: streams close the backend's iterator, non-streaming requests
are cancelled on disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
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
    MODELS_PATH,
    PING_PATH,
    STATS_PATH,
    STREAM_HEADER,
)
from modelhost.worker.engine.types import Backend, InputTooLong, TokenEvent
from modelhost.worker.engine_mode.generation import OpenGeneration, TextGenerator
from modelhost.worker.engine_mode.metrics import LlmMetrics
from modelhost.worker.engine_mode.schemas import lmi, openai, tgi
from modelhost.worker.engine_mode.schemas.request import RequestError, TextRequest
from modelhost.worker.engine_mode.schemas.result import GenerationResult
from modelhost.worker.engine_mode.serving_mode import Schema
from modelhost.worker.health import ENGINE_STEP_BOUND_S, Health, engine_health
from modelhost.worker.metrics import metrics_route, worker_registry

log = logging.getLogger(__name__)

ErrorMapper = Callable[[RequestError | InputTooLong], tuple[int, Any]]


class StreamFormat(Protocol):
    media_type: str

    def start(self) -> bytes: ...

    def event(self, event: TokenEvent) -> bytes: ...

    def end(self) -> bytes: ...


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


@dataclass
class EngineState:
    ready: bool = False
    failure: str | None = None
    backend: Backend | None = None
    healthy: bool = True  # what the last /ping said once ready (to log changes)


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type="application/json")


async def _until_disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def run_unless_disconnected(request: Request, work: Awaitable[Any]) -> Any:
    """Await `work`, cancelling it (which closes its backend iterator) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_until_disconnected(request.receive))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientGone()


class _ClosingStream:
    """A StreamingResponse whose generation is closed however the response ends (done, error, disconnect)."""

    def __init__(self, response: StreamingResponse, generation: OpenGeneration) -> None:
        self.response = response
        self.generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.generation.close()


async def _stream_body(generation: OpenGeneration, fmt: StreamFormat) -> AsyncIterator[bytes]:
    start = fmt.start()
    if start:
        yield start
    try:
        async for event in generation.all_events():
            chunk = fmt.event(event)
            if chunk:
                yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await generation.close()
    end = fmt.end()
    if end:
        yield end


class EngineEndpoints:
    """Routes of an engine-mode worker; `create_engine_app` wires them into Starlette."""

    def __init__(
        self,
        load_backend: Callable[[], Awaitable[Backend]],
        schema: Schema,
        model_name: str,
        on_load_failure: Callable[[str], None],
        loading_timeout_s: float = 240.0,
        clock: Callable[[], float] = time.monotonic,
        step_bound_s: float = ENGINE_STEP_BOUND_S,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.load_backend = load_backend
        self.schema = schema
        self.model_name = model_name
        self.on_load_failure = on_load_failure
        self.loading_timeout_s = loading_timeout_s
        self.clock = clock
        self.step_bound_s = step_bound_s
        self.state = EngineState()
        self.created = int(time.time())
        self.registry = registry if registry is not None else worker_registry()
        self.metrics: LlmMetrics | None = None  # registered once the backend has loaded (its limits size buckets)

    # lifecycle -------------------------------------------------------------------------------
    async def load(self) -> None:
        started = self.clock()
        try:
            backend = await asyncio.wait_for(self.load_backend(), self.loading_timeout_s)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self._failed(
                f"model loading did not finish within {self.loading_timeout_s:g} s (option.model_loading_timeout)", None
            )
            return
        except BaseException as exc:
            self._failed(traceback.format_exception_only(exc)[-1].strip(), exc)
            return
        self.metrics = LlmMetrics.register(self.registry, self.model_name, backend)
        self.state.backend = backend
        self.state.ready = True
        log.info(
            "engine %s loaded in %.1f s; limits %s; serving the %s schema",
            getattr(backend, "name", "?"),
            self.clock() - started,
            backend.limits,
            self.schema,
        )

    def _failed(self, reason: str, exc: BaseException | None) -> None:
        self.state.failure = reason
        log.error("model failed to load: %s", reason, exc_info=exc)
        self.on_load_failure(reason)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self.load(), name="engine-load")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.state.backend is not None:
                with contextlib.suppress(Exception):
                    await self.state.backend.shutdown()

    # routes ----------------------------------------------------------------------------------
    def health(self) -> Health:
        """Serving, unless the engine reports a step stuck far past any step's length (see health.py)."""
        backend = self.state.backend
        try:
            running_s = backend.stats().get("current_step_s") if backend is not None else None
        except Exception:  # a backend whose stats fail is judged by its answers, not here
            running_s = None
        return engine_health(running_s if isinstance(running_s, (int, float)) else None, self.step_bound_s)

    async def ping(self, request: Request) -> Response:
        if self.state.ready:
            health = self.health()
            if health.healthy != self.state.healthy:  # log the changes, not every ping
                self.state.healthy = health.healthy
                level = logging.INFO if health.healthy else logging.ERROR
                log.log(level, "/ping: %s", health.reason or "healthy again")
            return JSONResponse(health.body(), status_code=200 if health.healthy else 503)
        if self.state.failure is not None:
            return JSONResponse({"code": 503, "message": f"model failed to load: {self.state.failure}"}, 503)
        return JSONResponse({"code": 503, "message": "model is loading"}, status_code=503)

    async def stats(self, request: Request) -> Response:
        backend = self.state.backend
        return JSONResponse({"ready": self.state.ready, "engine": backend.stats() if backend else None})

    async def models(self, request: Request) -> Response:
        return JSONResponse(openai.models_list(self.model_name, self.created))

    async def invocations(self, request: Request) -> Any:
        stream_header = request.headers.get(STREAM_HEADER, "").lower() == "true"
        body = await self._body(request)
        if isinstance(body, dict) and "messages" in body:
            return await self._openai(request, body, openai.parse_chat, stream_header)
        mapper: ErrorMapper = tgi.request_error if self.schema == "tgi" else lmi.request_error
        if isinstance(body, _BadBody):
            return _json(*mapper(RequestError(body.message)))
        return await self._serve(request, lambda: lmi.parse_generate(body, self.schema, stream_header), mapper)

    async def chat_completions(self, request: Request) -> Any:
        return await self._openai(request, await self._body(request), openai.parse_chat, False)

    async def completions(self, request: Request) -> Any:
        return await self._openai(request, await self._body(request), openai.parse_completion, False)

    # helpers ---------------------------------------------------------------------------------
    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw.strip() else _BadBody("the body is empty; send a JSON object")
        except ValueError as exc:
            return _BadBody(f"the body is not valid JSON: {exc}")
        except RecursionError:
            return _BadBody("the body's JSON is nested too deeply")

    async def _openai(
        self, request: Request, body: Any, parse: Callable[[Any, bool], TextRequest], stream_header: bool
    ) -> Any:
        if isinstance(body, _BadBody):
            return _json(*openai.request_error(RequestError(body.message)))
        return await self._serve(request, lambda: parse(body, stream_header), openai.request_error)

    async def _serve(self, request: Request, parse: Callable[[], TextRequest], errors: ErrorMapper) -> Any:
        backend = self.state.backend
        if not self.state.ready or backend is None:
            return JSONResponse({"code": 503, "message": "model is not loaded"}, status_code=503)
        try:
            parsed = parse()
            generation = await TextGenerator(backend, self.metrics).open(parsed)
        except (RequestError, InputTooLong) as exc:
            return _json(*errors(exc))
        except ValueError as exc:  # the engine's own checks (an empty prompt, a token id outside the vocabulary)
            return _json(*errors(RequestError(str(exc), getattr(exc, "param", None))))
        result = GenerationResult(prompt=generation.prompt, prompt_tokens=generation.prompt_tokens)
        fmt = self._format(parsed, result, backend)
        if parsed.stream:
            response = StreamingResponse(_stream_body(generation, fmt), media_type=fmt.media_type)
            return _ClosingStream(response, generation)
        try:
            await run_unless_disconnected(request, self._collect(generation, result))
        except ClientGone:
            log.info("client disconnected; generation aborted")
            return Response(status_code=499)
        return _json(*self._answer(parsed, result, backend))

    @staticmethod
    async def _collect(generation: OpenGeneration, result: GenerationResult) -> None:
        try:
            async for event in generation.all_events():
                result.add(event)
        finally:
            await generation.close()

    def _model(self, parsed: TextRequest) -> str:
        return parsed.model or self.model_name

    def _format(self, parsed: TextRequest, result: GenerationResult, backend: Backend) -> StreamFormat:
        if parsed.api in ("chat", "completions"):
            return openai.OpenAiStream(parsed, result, self._model(parsed))
        if parsed.api == "tgi":
            return tgi.TgiStream(parsed, result, backend.eos_token_ids)
        return lmi.LmiStream(parsed, result)

    def _answer(self, parsed: TextRequest, result: GenerationResult, backend: Backend) -> tuple[int, Any]:
        if not result.finished:
            result.finish_reason, result.error = "error", "the generation ended without a final token"
        if parsed.api in ("chat", "completions"):
            return openai.response(result, parsed, self._model(parsed))
        if parsed.api == "tgi":
            return tgi.response(result, parsed, backend.eos_token_ids)
        return lmi.response(result, parsed)


@dataclass(frozen=True, slots=True)
class _BadBody:
    message: str


def create_engine_app(endpoints: EngineEndpoints) -> Starlette:
    """The ASGI app of an engine-mode worker; loading starts with the app."""
    routes = [
        Route(PING_PATH, endpoints.ping, methods=["GET"]),
        Route(INVOCATIONS_PATH, endpoints.invocations, methods=["POST"]),
        Route(CHAT_COMPLETIONS_PATH, endpoints.chat_completions, methods=["POST"]),
        Route(COMPLETIONS_PATH, endpoints.completions, methods=["POST"]),
        Route(MODELS_PATH, endpoints.models, methods=["GET"]),
        Route(STATS_PATH, endpoints.stats, methods=["GET"]),
        Route(METRICS_PATH, metrics_route(endpoints.registry), methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=endpoints.lifespan)
