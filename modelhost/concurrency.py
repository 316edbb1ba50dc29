"""Blocking work off the event loop, with a deadline that holds even when a system call never returns.

`asyncio.to_thread` runs work on the loop's executor, whose threads the interpreter joins at exit: an
`open()` on a FIFO or a hung network mount would then keep the server from stopping, and `wait_for` around it
cannot interrupt the call. `run_blocking` runs the work on a daemon thread of its own and stops waiting at the
deadline; a call that never returns is abandoned (and logged), never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Abandoned(TimeoutError):
    """The work did not finish by its deadline; its thread was left behind."""


async def run_blocking(work: Callable[[], T], *, timeout_s: float | None, name: str = "blocking") -> T:
    """Run `work()` on a daemon thread; raise Abandoned if it is not done within `timeout_s`."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task, which decides
            _call_soon(loop, settle, None, exc)
        else:
            _call_soon(loop, settle, result, None)

    threading.Thread(target=target, name=name, daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout=timeout_s)
    except TimeoutError as exc:
        log.warning("%s did not finish within %s s; abandoned its thread", name, timeout_s)
        raise Abandoned(f"{name} did not finish within {timeout_s:g} s") from exc


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)
