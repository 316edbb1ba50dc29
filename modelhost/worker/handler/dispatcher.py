"""Dispatcher: queues requests, forms batches (batching.decide_batch) and runs them on the handler thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from modelhost.worker.handler.batch_format import build_batch_input, split_batch_output
from modelhost.worker.handler.batching import BatchPolicy, decide_batch
from modelhost.worker.handler.codec import error_output
from modelhost.worker.handler.djl import Input, Output
from modelhost.worker.handler.thread import HandlerThread, HandlerTimeout

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More requests are waiting than `job_queue_size` allows (DJL answers 503)."""


@dataclass(eq=False)
class Reply:
    """One request's Output. The dispatcher sends no further work to the handler until every Reply of a batch
    is released, i.e. its response (or its stream) has been sent."""

    output: Output | None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass(eq=False)
class _Pending:
    inputs: Input
    arrival_s: float
    future: asyncio.Future[Reply]


class Dispatcher:
    """Feeds the handler one request or one batch at a time, in arrival order."""

    def __init__(
        self,
        call: Callable[[Input], Output | None],
        thread: HandlerThread,
        policy: BatchPolicy,
        predict_timeout_s: float,
        engine_properties: Mapping[str, str],
        max_queue: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._call = call
        self._thread = thread
        self._policy = policy
        self._predict_timeout_s = predict_timeout_s
        self._engine_properties = dict(engine_properties)
        self._max_queue = max_queue
        self._clock = clock
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()

    async def submit(self, inputs: Input) -> Reply:
        """Queue a request and wait for its Reply; the caller must release() it once the response is sent."""
        if len(self._queue) >= self._max_queue:
            raise QueueFull(f"{len(self._queue)} requests are already queued (job_queue_size)")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(inputs, self._clock(), future))
        self._arrived.set()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.result().release()
            raise

    async def run(self) -> None:
        """The loop: decide, take a batch, run it, wait until its responses are out; forever."""
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher step failed; continuing")

    async def _step(self) -> None:
        while self._queue and self._queue[0].future.done():  # the client went away while queued
            self._queue.popleft()
        decision = decide_batch(self._policy, [p.arrival_s for p in self._queue], self._clock())
        if decision.take == 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), decision.wait_s)
            return
        batch = [self._queue.popleft() for _ in range(decision.take)]
        batch = [p for p in batch if not p.future.done()]
        if batch:
            await self._serve(batch)

    async def _serve(self, batch: list[_Pending]) -> None:
        source, outputs = await self._execute(batch)
        replies = []
        for pending, output in zip(batch, outputs, strict=True):
            reply = Reply(output)
            if pending.future.done():
                reply.release()
            else:
                pending.future.set_result(reply)
            replies.append(reply)
        await asyncio.gather(*(reply.released.wait() for reply in replies))
        if source is not None and source._finalize:
            try:
                await self._thread.run(source.execute_finalize, timeout_s=self._predict_timeout_s)
            except HandlerTimeout as exc:
                log.error("the Output's finalize callback ran past %g s (option.predict_timeout)", exc.timeout_s)

    async def _execute(self, batch: list[_Pending]) -> tuple[Output | None, list[Output | None]]:
        inputs = build_batch_input([p.inputs for p in batch], self._engine_properties)
        if len(batch) > 1:
            log.info("calling the handler with a batch of %d requests", len(batch))
        try:
            result = await self._thread.run(self._call, inputs, timeout_s=self._predict_timeout_s)
        except HandlerTimeout as exc:
            message = f"prediction did not finish within {exc.timeout_s:g} s (option.predict_timeout)"
            log.error("%s", message)
            return None, [error_output(message) for _ in batch]
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.error("handler failed: %s", exc, exc_info=exc)
            return None, [error_output(str(exc)) for _ in batch]
        if len(batch) == 1:
            return result, [result]
        outputs: list[Output | None] = list(split_batch_output(result, len(batch)))
        return result, outputs
