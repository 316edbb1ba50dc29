"""HandlerThread: the one daemon thread every piece of user handler code runs on, serially."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()


class HandlerTimeout(Exception):
    """A handler call did not finish in time; the thread may still be running it."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"did not finish within {timeout_s:g} s")
        self.timeout_s = timeout_s


class HandlerThread:
    """A single-thread executor whose thread is a daemon, so a handler stuck past its timeout cannot keep the
    process alive at exit (concurrent.futures' pool threads are joined at interpreter exit)."""

    def __init__(self, name: str = "handler") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

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
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting side, which decides what to report
                future.set_exception(exc)
            else:
                future.set_result(result)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        self._ensure_started()
        future: Future[T] = Future()
        self._jobs.put((future, fn, args))
        return future

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None) -> T:
        """Run `fn(*args)` on the thread and await it; HandlerTimeout after `timeout_s` (the call goes on)."""
        job = self.submit(fn, *args)
        future = asyncio.wrap_future(job)
        if timeout_s is None:
            return await future
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            if job.done() and not job.cancelled() and job.exception() is not None:
                raise  # the handler's own TimeoutError
            raise HandlerTimeout(timeout_s) from None

    def stop(self) -> None:
        """Let the thread end after the jobs already queued."""
        if self._thread is not None:
            self._jobs.put(_STOP)
