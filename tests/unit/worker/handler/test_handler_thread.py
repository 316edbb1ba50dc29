"""HandlerThread: a call's timeout counts from its start, busy() names the running call, a call cancelled
before it starts never runs."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelhost.worker.handler.thread import HandlerThread, HandlerTimeout


def test_a_call_queued_behind_an_overrun_waits_for_it_instead_of_timing_out() -> None:
    thread = HandlerThread()
    release = threading.Event()

    async def scenario() -> str:
        with pytest.raises(HandlerTimeout):
            await thread.run(release.wait, 10, timeout_s=0.2)
        queued = asyncio.ensure_future(thread.run(lambda: "second", timeout_s=0.2))
        await asyncio.sleep(0.5)  # longer than its timeout, but it has not started
        assert not queued.done()
        release.set()
        return await queued

    try:
        assert asyncio.run(scenario()) == "second"
    finally:
        release.set()
        thread.stop()


def test_busy_reports_the_running_call_and_its_deadline() -> None:
    thread = HandlerThread()
    release, started = threading.Event(), threading.Event()

    def call() -> None:
        started.set()
        release.wait(10)

    assert thread.busy() is None
    before = time.monotonic()
    future = thread.submit(call, timeout_s=3.0)
    assert started.wait(5)
    busy = thread.busy()
    assert busy is not None and busy.timeout_s == 3.0 and before <= busy.started_s <= time.monotonic()
    release.set()
    future.result(5)
    assert thread.busy() is None
    thread.stop()


def test_a_call_cancelled_before_it_starts_never_runs() -> None:
    thread = HandlerThread()
    release = threading.Event()
    ran: list[str] = []

    async def scenario() -> None:
        first = asyncio.ensure_future(thread.run(release.wait, 10))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(thread.run(ran.append, "second", timeout_s=1.0))
        await asyncio.sleep(0.05)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        release.set()
        await first
        await thread.run(ran.append, "third", timeout_s=1.0)

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        thread.stop()
    assert ran == ["third"]


def test_the_handlers_own_exceptions_pass_through() -> None:
    thread = HandlerThread()

    def fail() -> None:
        raise TimeoutError("the handler's own")

    with pytest.raises(TimeoutError, match="the handler's own"):
        asyncio.run(thread.run(fail, timeout_s=1.0))
    thread.stop()
