"""The worker's own Prometheus registry and its GET /metrics route (both modes).

Each worker has one `CollectorRegistry` (never prometheus_client's global default one, which imported libraries
such as vLLM register into): the process and platform collectors, plus what the mode adds (engine mode:
engine_mode/metrics.py, the LLM metrics named as vLLM names them; handler mode: handler/metrics.py). The route
sits behind the router-token guard like /invocations (router_token.py); only /ping is open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response


def worker_registry() -> CollectorRegistry:
    """A fresh registry holding this process's CPU, memory, fds and start time and the Python platform info."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


async def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The exposition of `registry` in the format the Accept header asks for (Prometheus text 0.0.4 by default,
    OpenMetrics on request) and its content type. Off the event loop: collectors read /proc and backend stats."""
    encoder, content_type = choose_encoder(accept)
    return await asyncio.to_thread(encoder, registry), content_type


def metrics_route(registry: CollectorRegistry) -> Callable[[Request], Awaitable[Response]]:
    """The GET /metrics endpoint (for a Starlette Route) over `registry`."""

    async def metrics(request: Request) -> Response:
        body, content_type = await render(registry, request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    return metrics
