"""Forwarding a request to one of an endpoint's instances, shared by the router's edges.

`Upstream` is the one interface over the two transports (the keep-alive pool for whole answers, httpx for
streamed ones); both raise the same three errors: `UpstreamGone` (nothing answered: safe to send again),
`UpstreamBroken` (the answer was cut or the exchange failed) and `UpstreamTimeout`.

`InvocationRouter` resolves an endpoint to its installed route, picks a variant, takes a slot through
admission, sends, and on `UpstreamGone` reports the instance unreachable to the routing table and tries one
other instance. It never edits a route. The edges (router/app.py for sagemaker-runtime, router/openai.py for
the OpenAI API) map these errors to their own error shapes, each in one place.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx

from modelhost.contracts.worker import ROUTER_TOKEN_HEADER
from modelhost.errors import RuntimeValidationError, ServiceUnavailable
from modelhost.monitoring.invocations import Timing
from modelhost.resources.status import SERVES
from modelhost.resources.transform_job import job_of_hidden_endpoint
from modelhost.router.admission import Admission, Lease
from modelhost.router.table import EndpointRoute, InstalledRoute, InstanceRoute, NoVariant, RoutingTable, VariantRoute
from modelhost.router.upstream import (
    UpstreamBroken,
    UpstreamError,
    UpstreamGone,
    UpstreamPool,
    UpstreamResponse,
    UpstreamTimeout,
)

__all__ = [
    "HttpUpstream",
    "InvocationRouter",
    "LeasedStream",
    "Upstream",
    "UpstreamBroken",
    "UpstreamError",
    "UpstreamGone",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamStream",
    "UpstreamTimeout",
    "failure_message",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What is sent to the worker: `POST {instance url}{path}`."""

    path: str  # /invocations, /v1/chat/completions, ...
    headers: Mapping[str, str]
    body: bytes
    timeout_s: float  # per wait for the worker (connect, answer, next part of a stream)


def for_instance(request: UpstreamRequest, instance: InstanceRoute) -> UpstreamRequest:
    """`request` as sent to `instance`: with the worker's router token, the only way past its guard."""
    if not instance.router_token:
        return request
    headers = {k: v for k, v in request.headers.items() if k.lower() != ROUTER_TOKEN_HEADER}
    headers[ROUTER_TOKEN_HEADER] = instance.router_token
    return UpstreamRequest(request.path, headers, request.body, request.timeout_s)


class UpstreamStream(Protocol):
    """An answer whose status and headers have arrived; its body is read as it comes."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...  # case-insensitive lookup

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises UpstreamTimeout (stalled) or UpstreamBroken (cut)."""
        ...

    async def read_text(self) -> str:
        """The rest of the body as text, best effort (an error body)."""
        ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    async def post(self, url: str, request: UpstreamRequest) -> UpstreamResponse:
        """The whole answer. Raises UpstreamGone, UpstreamBroken or UpstreamTimeout."""
        ...

    async def stream(self, url: str, request: UpstreamRequest) -> UpstreamStream:
        """Status and headers read, the body still to come. Raises UpstreamGone, UpstreamBroken or UpstreamTimeout."""
        ...


class _HttpxStream:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                if chunk:
                    yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise UpstreamBroken(str(exc)) from exc

    async def read_text(self) -> str:
        try:
            return (await self._response.aread()).decode("utf-8", "replace")
        except (httpx.HTTPError, httpx.StreamError):  # cut, or already read: what arrived is all there is
            return ""

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpUpstream:
    """Whole answers through the keep-alive pool, streamed answers through httpx."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._pool = UpstreamPool()

    def close(self) -> None:
        self._pool.close()

    async def post(self, url: str, request: UpstreamRequest) -> UpstreamResponse:
        target = urlsplit(url)
        return await self._pool.post(
            target.hostname or "127.0.0.1",
            target.port or 80,
            request.path,
            dict(request.headers),
            request.body,
            request.timeout_s,
        )

    async def stream(self, url: str, request: UpstreamRequest) -> UpstreamStream:
        built = self._client.build_request(
            "POST",
            f"{url}{request.path}",
            content=request.body,
            headers=dict(request.headers),
            timeout=request.timeout_s,
        )
        try:
            return _HttpxStream(await self._client.send(built, stream=True))
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(str(exc)) from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # refused, or closed (a kept-alive connection reset) before an answer
            raise UpstreamGone(repr(exc)) from exc
        except httpx.HTTPError as exc:
            raise UpstreamBroken(repr(exc)) from exc


@dataclass(slots=True)
class LeasedStream:
    """A streamed answer and the instance slot it holds; `aclose()` closes the answer and frees the slot."""

    answer: UpstreamStream
    lease: Lease
    _closed: bool = field(default=False)

    @property
    def instance_id(self) -> str:
        return self.lease.instance.instance_id

    async def aclose(self) -> None:
        """Idempotent; shielded, so a cancelled relay still closes the connection (the worker then aborts)."""
        if self._closed:
            return
        self._closed = True
        self.lease.release()
        with anyio.CancelScope(shield=True):
            await self.answer.aclose()


def failure_message(error: UpstreamError, endpoint_name: str) -> str:
    """How either edge tells the caller that forwarding failed (SageMaker's ModelError wording)."""
    if isinstance(error, UpstreamTimeout):
        return (
            'Received server error (0) from primary with message "Your invocation timed out while waiting for '
            "a response from container primary. Review the latency metrics for each container, resolve the "
            'issue, and try again."'
        )
    return (
        f'Received server error (0) from primary with message "the instance went away: {error}". '
        f"See the endpoint's log (modelhost logs {endpoint_name}) for more information."
    )


class InvocationRouter:
    """Endpoint name → installed route → variant → instance slot → the worker's answer, with one retry
    elsewhere when nothing answered."""

    def __init__(
        self,
        table: RoutingTable,
        admission: Admission,
        upstream: Upstream,
        endpoint_status: Callable[[str], str | None],
        account_id: str,
        timeout_s: float,
        rng: random.Random | None = None,
    ) -> None:
        self._table = table
        self._admission = admission
        self._upstream = upstream
        self._endpoint_status = endpoint_status  # store lookup: name -> EndpointStatus or None
        self._account_id = account_id
        self._rng = rng or random.Random()
        self.timeout_s = timeout_s

    def resolve(self, name: str, *, internal: bool = False) -> InstalledRoute:
        """The endpoint's installed route. Raises RuntimeValidationError / ServiceUnavailable in SageMaker's words.
        A transform job's hidden endpoint is found only by the job's own runner (`internal`)."""
        if not internal and job_of_hidden_endpoint(name) is not None:
            raise RuntimeValidationError(f"Endpoint {name} of account {self._account_id} not found.")
        installed = self._table.get(name)
        if installed is not None:
            return installed
        status = self._endpoint_status(name)
        if status is None:
            raise RuntimeValidationError(f"Endpoint {name} of account {self._account_id} not found.")
        # an endpoint that serves (or, right after a restart, is getting its instances back) but has no route yet
        # answers the retryable ServiceUnavailable whatever its status, never a ValidationError
        if status in SERVES:
            raise ServiceUnavailable(f"Endpoint {name} has no instance ready yet; retry shortly.")
        raise RuntimeValidationError(
            f"Endpoint {name} of account {self._account_id} is not in service (status: {status}); "
            "only InService endpoints can be invoked."
        )

    def select(
        self, name: str, target_variant: str | None, *, internal: bool = False
    ) -> tuple[InstalledRoute, VariantRoute]:
        """The endpoint's route and a variant (the caller's TargetVariant, else drawn by weight)."""
        installed = self.resolve(name, internal=internal)
        try:
            variant = self._table.choose_variant(installed.route, target_variant)
        except NoVariant as exc:
            raise RuntimeValidationError(
                f"The TargetVariant '{exc}' does not exist on endpoint {name}; "
                f"variants: {', '.join(v.name for v in installed.route.variants)}."
            ) from exc
        return installed, variant

    async def send(
        self, route: EndpointRoute, variant: VariantRoute, request: UpstreamRequest, timing: Timing | None = None
    ) -> UpstreamResponse:
        """The whole answer of one instance of `variant` (any status). Raises ServiceUnavailable, Throttled, or
        an UpstreamError when forwarding failed. `timing` gets when the worker had the request and answered."""
        try:
            lease, answer = await self._attempt(
                route, variant, lambda i: self._upstream.post(i.url, for_instance(request, i)), timing
            )
        finally:
            if timing is not None and timing.model_started is not None:
                timing.model_ended = time.perf_counter()
        lease.release()
        return answer

    async def open_stream(
        self, route: EndpointRoute, variant: VariantRoute, request: UpstreamRequest, timing: Timing | None = None
    ) -> LeasedStream:
        """A streamed answer (any status); the caller closes it, which frees the instance's slot. Raises as `send`.
        `timing` gets when the worker had the request; the caller marks the end when the stream is done."""
        lease, answer = await self._attempt(
            route, variant, lambda i: self._upstream.stream(i.url, for_instance(request, i)), timing
        )
        return LeasedStream(answer, lease)

    async def _attempt(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        send: Callable[[InstanceRoute], Awaitable[T]],
        timing: Timing | None = None,
    ) -> tuple[Lease, T]:
        """Send on the least-busy instance under its concurrency limit (waiting in the bounded queue when all
        are full); if nothing answered there, report it and try one other."""
        tried: set[str] = set()
        for attempt in range(2):
            lease = await self._admission.acquire(route.name, variant.name, tried, self.timeout_s)
            if lease is None:
                raise ServiceUnavailable(
                    f"Variant {variant.name} of endpoint {route.name} has no instance ready; retry shortly."
                )
            instance = lease.instance
            tried.add(instance.instance_id)
            if timing is not None:
                timing.model_started = time.perf_counter()  # the model's time starts when its worker is sent it
                timing.cold_start_s = max(timing.cold_start_s, lease.cold_start_s)
            try:
                return lease, await send(instance)
            except UpstreamGone:
                lease.release()
                self._table.report_unreachable(route.name, instance.instance_id)
                if attempt == 1:
                    raise
                log.warning("instance %s of %s did not answer; retrying elsewhere", instance.instance_id, route.name)
            except BaseException:
                lease.release()
                raise
        raise AssertionError("unreachable")
