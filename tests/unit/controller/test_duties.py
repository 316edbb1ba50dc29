"""Leader duties: a start-up step that fails is retried with back-off (and shown as a problem meanwhile), a duty
that fails is started again, and stopping never raises."""

from __future__ import annotations

import asyncio

from modelhost.app import _cancel
from modelhost.controller.duties import Duties
from modelhost.controller.leadership import Leadership, Role
from modelhost.store.errors import StoreUnavailable
from tests.fakes.clock import FakeClock
from tests.unit.controller.test_leadership import FakeLock


def test_a_start_up_step_that_fails_is_retried_and_shown_until_it_succeeds() -> None:
    """Right after a database restart the stored async requests cannot be read while the lock works: the
    dispatcher must start once they can, not never."""

    async def scenario() -> None:
        duties = Duties(first_backoff_s=0.001, max_backoff_s=0.004)
        loads, ran = [0], asyncio.Event()

        def load() -> None:
            loads[0] += 1
            if loads[0] <= 3:
                raise StoreUnavailable("postgresql://db/mh", "read", "the database system is starting up")

        async def run() -> None:
            ran.set()
            await asyncio.Event().wait()

        duties.start("async inference", run, prepare=load)
        await asyncio.sleep(0.002)
        assert any("async inference could not start" in p for p in duties.problems())
        await asyncio.wait_for(ran.wait(), 2)
        assert loads[0] == 4 and duties.problems() == [] and duties.running() == ["async inference"]
        await duties.stop()
        assert duties.running() == []

    asyncio.run(scenario())


def test_a_duty_that_fails_is_started_again_and_stop_does_not_raise() -> None:
    async def scenario() -> None:
        duties = Duties(first_backoff_s=0.001)
        starts = [0]

        async def flaky() -> None:
            starts[0] += 1
            if starts[0] < 3:
                raise RuntimeError("boom")
            await asyncio.Event().wait()

        duties.start("control loop", flaky)
        for _ in range(500):
            await asyncio.sleep(0.001)
            if starts[0] >= 3:
                break
        assert starts[0] == 3 and duties.running() == ["control loop"]
        await duties.stop()

    asyncio.run(scenario())


def test_an_election_whose_start_fails_steps_down_instead_of_leading_idle() -> None:
    """Fails without the fix: the exception ended `run` and the server held the lock, "leader", doing nothing."""

    async def scenario() -> None:
        lock = FakeLock(busy_tries=1)
        leadership = Leadership(lock, FakeClock(), retry_s=0.001)
        lost: list[int] = []

        def elected() -> None:
            raise StoreUnavailable("postgresql://db/mh", "read", "the database system is starting up")

        async def on_lost() -> None:
            lost.append(1)

        await asyncio.wait_for(leadership.run(elected, on_lost), 2)
        assert lost == [1] and leadership.role is Role.STEPPED_DOWN

    asyncio.run(scenario())


def test_shutdown_goes_on_past_a_task_that_failed() -> None:
    """`_cancel` at shutdown logs a failed task instead of raising (which skipped stopping workers and releasing
    the lock; fails without the fix)."""

    async def scenario() -> None:
        async def fails() -> None:
            raise RuntimeError("lead() raised")

        async def waits() -> None:
            await asyncio.Event().wait()

        failed, waiting = asyncio.create_task(fails()), asyncio.create_task(waits())
        await asyncio.sleep(0)
        await _cancel(failed, waiting)
        assert waiting.cancelled()

    asyncio.run(scenario())
