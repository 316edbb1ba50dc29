"""The one task that runs InvokeEndpointAsync's queue (the server owns it; app.py starts and stops it).

At start every stored request is queued again in arrival order ("running" ones too: they were cut by a crash
and run again — at-least-once). Each pass, per endpoint, `decide.plan` says which requests start, expire or
fail. A started request reads its input (InputLocation or inline body), goes through the InvocationRouter
like any InvokeEndpoint (so a variant at zero instances is started by admission and the request waits for
it), and its answer is written to the output location; a model error, a timeout, an expired TTL, an input
that cannot be read or an endpoint that is gone writes an error document to the failure location instead.
Then the SNS notification is published and only then the row deleted. "Not now" answers of the router
(no instance yet, throttled) put the request back, oldest first, and hold its endpoint back a moment.

Only the leader of a store dispatches (a follower's intake records the row and nothing else); on election
`reload` drops whatever this server held in memory and queues the stored requests. A request's row is only ever
changed in place (a conditional update): a request whose row is gone (it was run, or its endpoint deleted,
elsewhere) is dropped, never written back.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from modelhost.async_inference import decide
from modelhost.async_inference.decide import Backlog, EndpointView, Waiting
from modelhost.async_inference.notify import SnsPublisher, notification
from modelhost.async_inference.records import AsyncRequest, AsyncState
from modelhost.concurrency import run_blocking
from modelhost.contracts.worker import INVOCATIONS_PATH
from modelhost.errors import RuntimeValidationError, ServiceUnavailable, Throttled
from modelhost.monitoring.invocations import InvocationMetrics, Outcome, Timing
from modelhost.resources.endpoint import Endpoint
from modelhost.router.forward import InvocationRouter, UpstreamError, UpstreamRequest, UpstreamTimeout, failure_message
from modelhost.router.table import RoutingTable
from modelhost.storage.objects import ObjectError, Objects
from modelhost.store.errors import StoreUnavailable, UnreadableRecord
from modelhost.store.records import Records

log = logging.getLogger(__name__)

PASS_INTERVAL_S = 1.0  # a pass runs at least this often (expiry, back-off ends); submissions wake it at once
RETRY_BACKOFF_S = 2.0  # an endpoint whose request the router could not take gets nothing new for this long
MAX_BACKOFF_S = 30.0  # ...doubling while it keeps refusing, up to this
ENDPOINTS_REFRESH_S = 5.0  # how often the list of asynchronous endpoints (for the metrics) is read again
MAX_ATTEMPTS = 3  # starts a request may have; one the server died under this often fails
IO_TIMEOUT_S = 600.0  # reading an input or writing a result
STORE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str  # SNS failureReason and the error document when the model said nothing
    body: bytes | None = None  # the model's own error answer, written as the error document
    content_type: str | None = None


class _Retry(Exception):
    """The router cannot take the request now (no instance yet, throttled): queue it again."""


class AsyncDispatcher:
    def __init__(
        self,
        records: Records,
        router: InvocationRouter,
        table: RoutingTable,
        objects: Objects,
        publisher: SnsPublisher,
        metrics: InvocationMetrics | None,
        *,
        max_input_bytes: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
        self._router = router
        self._table = table
        self._objects = objects
        self._publisher = publisher
        self._metrics = metrics
        self._max_input_bytes = max_input_bytes
        self._now = now
        self._waiting: dict[str, list[AsyncRequest]] = {}  # endpoint key -> oldest first
        self._running: dict[str, dict[str, AsyncRequest]] = {}  # endpoint key -> request key -> request
        self._not_before: dict[str, float] = {}
        self._refusals: dict[str, int] = {}  # endpoint key -> "not now" answers in a row (the back-off grows)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._asynchronous: list[str] = []  # asynchronous endpoints' names (metrics even with an empty queue)
        self._refreshed = 0.0
        self.completed = 0  # requests whose result was written (tests and benchmarks read these)
        self.failed = 0

    # -- intake ------------------------------------------------------------------------------------------
    def submit(self, request: AsyncRequest) -> None:
        """A request just recorded in the store (the intake's)."""
        bisect.insort(self._waiting.setdefault(request.endpoint.lower(), []), request, key=lambda r: r.key)
        self._wake.set()

    def reload(self) -> int:
        """On election: the in-memory queue (whatever this server held while it followed) dropped, and every stored
        request queued (blocking). Returns how many."""
        self._waiting.clear()
        self._not_before.clear()
        self._refusals.clear()
        return self.load()

    def load(self) -> int:
        """Every stored request not queued or running here yet, queued (blocking; before `run`, and again and
        again on the leader of a shared store, where other servers' intakes record requests). Returns how many."""
        known = {r.key for waiting in self._waiting.values() for r in waiting}
        known |= {key for running in self._running.values() for key in running}
        stored = sorted((r for r in self._records.async_requests.list() if r.key not in known), key=lambda r: r.key)
        for request in stored:
            if request.state is AsyncState.RUNNING:
                log.info("async inference: %s of %s was running when the server stopped; running it again",
                         request.inference_id, request.endpoint)  # fmt: skip
            bisect.insort(self._waiting.setdefault(request.endpoint.lower(), []), request, key=lambda r: r.key)
        if stored:
            self._wake.set()
        return len(stored)

    # -- the loop ----------------------------------------------------------------------------------------
    async def run(self) -> None:
        """The dispatch loop (cancel to stop; `stop` also cancels the requests in flight)."""
        while True:
            try:
                self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store hiccuped: the next pass tries again
                log.exception("async inference: dispatch pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), PASS_INTERVAL_S)

    def dispatch_once(self) -> None:
        """One pass: start, expire or fail what the plan says, for every endpoint with waiting requests."""
        self._refresh_endpoints()
        self._pass()

    async def settled(self) -> None:
        """Wait until no request is in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the requests in flight; their rows stay and they run again at the next start."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _refresh_endpoints(self) -> None:
        now = time.monotonic()
        if now - self._refreshed < ENDPOINTS_REFRESH_S:
            return
        self._refreshed = now
        self._asynchronous = [e.name for e in self._records.endpoints.list() if e.async_inference is not None]

    def _endpoint(self, name: str) -> tuple[Endpoint | None, bool]:
        """(the record, readable). An unreadable record is not a deleted one: its queue waits."""
        try:
            return self._records.endpoints.get(name), True
        except (UnreadableRecord, StoreUnavailable):
            return None, False

    def queued(self, name: str) -> int:
        """Requests of the endpoint waiting or in flight."""
        key = name.lower()
        return len(self._waiting.get(key, ())) + len(self._running.get(key, {}))

    def instances(self, name: str) -> int:
        installed = self._table.get(name)
        return 0 if installed is None else sum(len(v.instances) for v in installed.route.variants)

    def _pass(self) -> None:
        now = self._now()
        for key in [k for k, waiting in self._waiting.items() if waiting]:
            waiting = self._waiting[key]
            endpoint, readable = self._endpoint(waiting[0].endpoint)
            if not readable:
                continue
            name = waiting[0].endpoint
            config = endpoint.async_inference if endpoint is not None else None
            status = str(endpoint.status) if endpoint is not None else None
            view = EndpointView(
                name=name,
                refusal=decide.refusal_of(name, status, config is not None),
                instances=self.instances(name),
                per_instance=config.max_concurrent_per_instance if config is not None else 1,
                running=len(self._running.get(key, {})),
                not_before=self._not_before.get(key, 0.0),
                holding=status == "Creating",
            )
            plan = decide.plan(view, [Waiting(r.key, r.received, r.expires, r.attempts > 0) for r in waiting], now)
            chosen = set(plan.start) | set(plan.expire) | set(plan.fail)
            if not chosen:
                continue
            by_key = {r.key: r for r in waiting}
            self._waiting[key] = [r for r in waiting if r.key not in chosen]
            for request_key in plan.expire:
                request = by_key[request_key]
                ttl = request.expires - request.received
                reason = (f"RequestExpired: the request waited in the queue longer than its RequestTTLSeconds "
                          f"({ttl:.0f} s) before it could be processed.")  # fmt: skip
                self._spawn(key, request, self._finish_failed(request, Failure(reason)))
            for request_key in plan.fail:
                request = by_key[request_key]
                self._spawn(key, request, self._finish_failed(request, Failure(plan.fail_reason)))
            for request_key in plan.start:
                request = by_key[request_key]
                self._spawn(key, request, self._process(request))

    def _spawn(self, key: str, request: AsyncRequest, work: Coroutine[Any, Any, None]) -> None:
        self._running.setdefault(key, {})[request.key] = request
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._running.get(key, {}).pop(request.key, None)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("async inference: %s of %s ended unexpectedly; it is queued again", request.inference_id,
                          request.endpoint, exc_info=finished.exception())  # fmt: skip
                self._requeue(request)  # its row is still stored: it must not vanish until a restart
            self._wake.set()

        task.add_done_callback(done)

    def _requeue(self, request: AsyncRequest) -> None:
        """Back in the queue, and its endpoint held back: 2 s, doubling while it keeps refusing, at most 30 s."""
        key = request.endpoint.lower()
        refusals = self._refusals.get(key, 0) + 1
        self._refusals[key] = refusals
        self._not_before[key] = self._now() + min(MAX_BACKOFF_S, RETRY_BACKOFF_S * 2 ** (refusals - 1))
        bisect.insort(self._waiting.setdefault(key, []), request, key=lambda r: r.key)

    # -- one request -------------------------------------------------------------------------------------
    async def _store(self, work: Callable[[], object]) -> None:
        await run_blocking(work, timeout_s=STORE_TIMEOUT_S, name="async-store")

    def _replace(self, request: AsyncRequest, stored: AsyncRequest) -> bool:
        """The request's row changed to `stored` only where it still exists (blocking): False when it is gone."""
        return self._records.async_requests.update(request.key, lambda current: stored) is not None

    async def _still_stored(self, request: AsyncRequest, stored: AsyncRequest) -> bool:
        present = await run_blocking(lambda: self._replace(request, stored), timeout_s=STORE_TIMEOUT_S,
                                     name="async-store")  # fmt: skip
        if not present:
            log.info("async inference: %s of %s is no longer stored (run or removed elsewhere); dropped",
                     request.inference_id, request.endpoint)  # fmt: skip
        return present

    async def _process(self, request: AsyncRequest) -> None:
        table = self._records.async_requests
        running = request.running(self._now())
        if running.attempts > MAX_ATTEMPTS:
            reason = (f"InternalFailure: the server stopped {request.attempts} times while this request ran; "
                      "it is not tried again.")  # fmt: skip
            await self._finish_failed(request, Failure(reason))
            return
        if not await self._still_stored(request, running):
            return
        try:
            failure, answer, content_type = await self._invoke(running)
        except _Retry:
            if await self._still_stored(request, request):  # as it was: a wait is not a start
                self._requeue(request)
            return
        except asyncio.CancelledError:  # a clean stop is not an attempt: it runs again at the next start
            with contextlib.suppress(Exception):
                self._replace(request, request)
            raise
        self._refusals.pop(request.endpoint.lower(), None)
        if failure is not None:
            await self._finish_failed(running, failure)
            return
        try:
            await run_blocking(lambda: self._objects.write(running.output_location, answer), timeout_s=IO_TIMEOUT_S,
                               name="async-output")  # fmt: skip
        except (ObjectError, TimeoutError) as exc:
            await self._finish_failed(running, Failure(f"ResponseUploadFailure: the result could not be written to "
                                                       f"{running.output_location}: {exc}"))  # fmt: skip
            return
        await self._notify(running, succeeded=True, content_type=content_type, included=answer)
        await self._store(lambda: table.delete(request.key))
        self.completed += 1

    async def _read_input(self, request: AsyncRequest) -> bytes:
        if request.inline_body is not None:
            return base64.b64decode(request.inline_body)
        location = request.input_location or ""
        return await run_blocking(lambda: self._objects.read(location, self._max_input_bytes), timeout_s=IO_TIMEOUT_S,
                                  name="async-input")  # fmt: skip

    async def _invoke(self, request: AsyncRequest) -> tuple[Failure | None, bytes, str | None]:
        """(failure or None, the model's answer, its content type). Raises _Retry when it cannot be sent now."""
        try:  # before the input is read: a request that cannot be sent now costs nothing
            installed, variant = self._router.select(request.endpoint, None)
        except ServiceUnavailable as exc:
            raise _Retry(str(exc)) from exc
        except RuntimeValidationError as exc:
            endpoint, _ = self._endpoint(request.endpoint)
            if endpoint is not None and str(endpoint.status) == "Creating":  # not up yet: it waits
                raise _Retry(exc.message) from exc
            return Failure(f"ValidationError: {exc.message}"), b"", None
        try:
            body = await self._read_input(request)
        except (ObjectError, TimeoutError) as exc:
            return Failure(f"ClientError: the input could not be read from {request.input_location}: {exc}"), b"", None
        headers = {"x-amzn-sagemaker-inference-id": request.inference_id}
        for name, value in (("content-type", request.content_type), ("accept", request.accept),
                            ("x-amzn-sagemaker-custom-attributes", request.custom_attributes)):  # fmt: skip
            if value:
                headers[name] = value
        timing = Timing()
        upstream = UpstreamRequest(INVOCATIONS_PATH, headers, body, request.invocation_timeout_s)
        instances = max(1, len(variant.instances))
        try:
            answer = await self._router.send(installed.route, variant, upstream, timing)
        except (Throttled, ServiceUnavailable) as exc:
            raise _Retry(str(exc)) from exc
        except UpstreamTimeout:
            self._record(request, variant.name, Outcome(424, model_status=0), timing, instances)
            reason = (f"ModelError: the model did not answer within the request's InvocationTimeoutSeconds "
                      f"({request.invocation_timeout_s:g} s).")  # fmt: skip
            return Failure(reason), b"", None
        except UpstreamError as exc:
            self._record(request, variant.name, Outcome(424, model_status=0), timing, instances)
            return Failure(f"ModelError: {failure_message(exc, request.endpoint)}"), b"", None
        if answer.status_code >= 300:
            self._record(request, variant.name, Outcome(424, model_status=answer.status_code), timing, instances)
            kind = "client" if answer.status_code < 500 else "server"
            reason = (f'ModelError: Received {kind} error ({answer.status_code}) from primary with message '
                      f'"{answer.text[:1000]}". See the log: modelhost logs {request.endpoint}')  # fmt: skip
            return Failure(reason, answer.content, answer.headers.get("content-type")), b"", None
        self._record(request, variant.name, Outcome(answer.status_code), timing, instances)
        return None, answer.content, answer.headers.get("content-type")

    def _record(self, request: AsyncRequest, variant: str, outcome: Outcome, timing: Timing, instances: int) -> None:
        if self._metrics is not None:
            self._metrics.record(request.endpoint, variant, outcome, timing, instances)

    async def _finish_failed(self, request: AsyncRequest, failure: Failure) -> None:
        """The error document at the failure location (when there is one), the error notification, the row gone."""
        table = self._records.async_requests
        stored = await run_blocking(lambda: table.get(request.key), timeout_s=STORE_TIMEOUT_S, name="async-store")
        if stored is None:  # run or removed elsewhere: no second error document or notification
            log.info("async inference: %s of %s is no longer stored; not failed again", request.inference_id,
                     request.endpoint)  # fmt: skip
            return
        log.info("async inference: %s of %s failed: %s", request.inference_id, request.endpoint, failure.reason)
        if request.failure_location is not None:
            document = failure.body if failure.body is not None else (failure.reason + "\n").encode()
            location = request.failure_location
            try:
                await run_blocking(lambda: self._objects.write(location, document), timeout_s=IO_TIMEOUT_S,
                                   name="async-failure")  # fmt: skip
            except (ObjectError, TimeoutError) as exc:
                log.warning("async inference: the error document of %s could not be written to %s: %s",
                            request.inference_id, location, exc)  # fmt: skip
        await self._notify(request, succeeded=False, content_type=failure.content_type or "text/plain",
                           reason=failure.reason, included=failure.body)  # fmt: skip
        await self._store(lambda: table.delete(request.key))
        self.failed += 1

    async def _notify(
        self,
        request: AsyncRequest,
        *,
        succeeded: bool,
        content_type: str | None,
        reason: str | None = None,
        included: bytes | None = None,
    ) -> None:
        config = request.config
        topic = config.topic_for(succeeded) if config is not None else None
        if config is None or topic is None:
            return
        message = notification(request, succeeded=succeeded, event_time=self._now(), content_type=content_type,
                               failure_reason=reason,
                               included=included if config.includes_response(succeeded) else None)  # fmt: skip
        try:
            await run_blocking(lambda: self._publisher.publish(topic, message), timeout_s=IO_TIMEOUT_S,
                               name="async-notify")  # fmt: skip
        except TimeoutError:
            log.warning("async inference: the notification of %s to %s timed out", request.inference_id, topic)

    # -- metrics -----------------------------------------------------------------------------------------
    def backlogs(self) -> list[Backlog]:
        """Every asynchronous endpoint's backlog now (the metrics source)."""
        names = {n.lower(): n for n in self._asynchronous}
        for key, waiting in self._waiting.items():
            if waiting:
                names.setdefault(key, waiting[0].endpoint)
        for key, running in self._running.items():
            if running:
                names.setdefault(key, next(iter(running.values())).endpoint)
        result = []
        for key, name in sorted(names.items()):
            received = [r.received for r in self._waiting.get(key, [])]
            received += [r.received for r in self._running.get(key, {}).values()]
            result.append(decide.backlog_of(name, received, self.instances(name)))
        return result
