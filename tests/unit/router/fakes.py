"""Fake upstreams for the router's forwarding tests: scripted answers and failures per instance, no sockets."""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Route

from modelhost.monitoring.invocations import InvocationMetrics
from modelhost.router.admission import Admission
from modelhost.router.app import RuntimeApi
from modelhost.router.cache import ResultCache
from modelhost.router.forward import InvocationRouter, UpstreamError, UpstreamRequest, UpstreamResponse
from modelhost.router.openai import OpenAiApi
from modelhost.router.table import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute
from modelhost.settings import ServerSettings


@dataclass
class FakeStream:
    status_code: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    parts: list[bytes | UpstreamError] = field(default_factory=list)
    closed: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if isinstance(part, UpstreamError):
                raise part
            yield part

    async def read_text(self) -> str:
        return b"".join(p for p in self.parts if isinstance(p, bytes)).decode()

    async def aclose(self) -> None:
        self.closed += 1


Outcome = UpstreamResponse | FakeStream | UpstreamError


def ok(payload: object, status: int = 200) -> UpstreamResponse:
    return UpstreamResponse(status, {"content-type": "application/json"}, json.dumps(payload).encode())


class FakeUpstream:
    """Answers each instance (by url, http://<instance id>) with the next scripted outcome; the last repeats."""

    def __init__(self, outcomes: dict[str, list[Outcome]]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, UpstreamRequest]] = []

    def _next(self, url: str, request: UpstreamRequest) -> Outcome:
        self.calls.append((url, request))
        script = self.outcomes[url.removeprefix("http://")]
        outcome = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(outcome, UpstreamError):
            raise outcome
        return outcome

    async def post(self, url: str, request: UpstreamRequest) -> UpstreamResponse:
        outcome = self._next(url, request)
        assert isinstance(outcome, UpstreamResponse)
        return outcome

    async def stream(self, url: str, request: UpstreamRequest) -> FakeStream:
        outcome = self._next(url, request)
        assert isinstance(outcome, FakeStream)
        return outcome

    def instances_called(self) -> list[str]:
        return [url.removeprefix("http://") for url, _ in self.calls]


@dataclass
class Rig:
    table: RoutingTable
    admission: Admission
    upstream: FakeUpstream
    router: InvocationRouter
    app: Starlette
    registry: CollectorRegistry
    metrics: InvocationMetrics


def rig(
    outcomes: dict[str, list[Outcome]],
    *,
    limit: int = 4,
    queue: int = 4,
    status: Callable[[str], str | None] = lambda name: "InService" if name.lower() == "ep" else None,
) -> Rig:
    """Endpoint "Ep" with one variant "A" whose instances are the keys of `outcomes`; both edges mounted."""
    table = RoutingTable(random.Random(0))
    instances = tuple(InstanceRoute(i, f"http://{i}") for i in outcomes)
    table.install(EndpointRoute("Ep", (VariantRoute("A", 1.0, instances),), "/aws/sagemaker/Endpoints/Ep"))
    admission = Admission(table, limit, queue, random.Random(0))
    upstream = FakeUpstream(outcomes)
    settings = ServerSettings(invocation_timeout_s=5.0)
    router = InvocationRouter(table, admission, upstream, status, settings.account_id, 5.0, random.Random(0))
    registry = CollectorRegistry()
    metrics = InvocationMetrics(registry)
    runtime = RuntimeApi(settings, router, ResultCache(1 << 20, time.monotonic), metrics)
    openai = OpenAiApi(settings, router, status, lambda: [], metrics)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", openai.handle, methods=["POST"]),
            Route("/{path:path}", runtime.handle, methods=["POST"]),
        ]
    )
    return Rig(table, admission, upstream, router, app, registry, metrics)
