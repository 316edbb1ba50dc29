"""HandlerThread: the one daemon thread every piece of user handler code runs on, serially.

A call's timeout counts from when the thread starts it, so a call queued behind one that overran waits for
the thread instead of timing out unrun. `busy()` tells /ping which call is running and since when.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_STOP = object()


class HandlerTimeout(Exception):
    """A handler call did not finish in time; the thread may still be running it."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"did not finish within {timeout_s:g} s")
        self.timeout_s = timeout_s


@dataclass(frozen=True, slots=True)
class BusyCall:
    """The call the thread is running: when it started (the thread's clock) and the time it is allowed."""

    started_s: float
    timeout_s: float | None  # None: no deadline (loading-free housekeeping such as closing an iterator)


@dataclass(eq=False)
class _Job(Generic[T]):
    fn: Callable[..., T]
    args: tuple[Any, ...]
    timeout_s: float | None
    result: Future[T] = field(default_factory=Future)
    started: Future[float] = field(default_factory=Future)  # the start time, once the thread picks it up


class HandlerThread:
    """A single-thread executor whose thread is a daemon, so a handler stuck past its timeout cannot keep the
    process alive at exit (concurrent.futures' pool threads are joined at interpreter exit)."""

    def __init__(self, name: str = "handler", clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self.clock = clock
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy: BusyCall | None = None

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            if not job.result.set_running_or_notify_cancel():
                continue
            started_s = self.clock()
            self._busy = BusyCall(started_s, job.timeout_s)
            job.started.set_result(started_s)
            try:
                result = job.fn(*job.args)
            except BaseException as exc:  # handed to the awaiting side, which decides what to report
                self._busy = None
                job.result.set_exception(exc)
            else:
                self._busy = None
                job.result.set_result(result)

    def busy(self) -> BusyCall | None:
        """The call running now, or None when the thread is idle (safe from any thread)."""
        return self._busy

    def submit(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None) -> Future[T]:
        """Queue `fn(*args)`; `timeout_s` is only its deadline for busy() (nothing waits for it here)."""
        return self._enqueue(fn, args, timeout_s).result

    def _enqueue(self, fn: Callable[..., T], args: tuple[Any, ...], timeout_s: float | None) -> _Job[T]:
        self._ensure_started()
        job: _Job[T] = _Job(fn, args, timeout_s)
        self._jobs.put(job)
        return job

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None) -> T:
        """Run `fn(*args)` on the thread and await it; HandlerTimeout once it has run `timeout_s` (the call
        goes on; the next call starts when it returns). Cancelling before the call starts drops it."""
        job = self._enqueue(fn, args, timeout_s)
        done = asyncio.wrap_future(job.result)  # cancelling this cancels the job if it has not started
        if timeout_s is None:
            return await done
        started = asyncio.wrap_future(job.started)
        either: set[asyncio.Future[Any]] = {done, started}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            done.cancel()
            started.cancel()
            raise
        if not started.done():  # the job ended without starting (cancelled by someone else)
            started.cancel()
            return await done
        remaining_s = max(0.0, timeout_s - (self.clock() - started.result()))
        try:
            return await asyncio.wait_for(done, remaining_s)
        except TimeoutError:
            if job.result.done() and not job.result.cancelled() and job.result.exception() is not None:
                raise  # the handler's own TimeoutError
            raise HandlerTimeout(timeout_s) from None

    def stop(self) -> None:
        """Let the thread end after the jobs already queued."""
        if self._thread is not None:
            self._jobs.put(_STOP)
