"""Leadership: a follower campaigns until the lock is free, then leads; a leader whose lock is gone steps down."""

from __future__ import annotations

import asyncio

from modelhost.controller.leadership import Leadership, Role
from modelhost.store.leader import SoloLeaderLock
from tests.fakes.clock import FakeClock


class FakeLock:
    """Free after `busy_tries` tries; held until `lose()`."""

    def __init__(self, busy_tries: int = 0) -> None:
        self.busy_tries = busy_tries
        self.tries = 0
        self.held = False
        self.released = False

    def try_acquire(self) -> bool:
        self.tries += 1
        self.held = self.tries > self.busy_tries
        return self.held

    def still_held(self) -> bool:
        return self.held

    def lose(self) -> None:
        self.held = False

    def release(self) -> None:
        self.released = True
        self.held = False


def test_the_only_server_leads_from_the_start() -> None:
    leadership = Leadership(SoloLeaderLock(), FakeClock())
    assert leadership.elect_now() is True and leadership.role is Role.LEADER


def test_a_follower_follows_until_the_lock_is_free_then_leads() -> None:
    async def scenario() -> None:
        lock, clock = FakeLock(busy_tries=3), FakeClock()
        leadership = Leadership(lock, clock, retry_s=1.0)
        events: list[str] = []
        assert leadership.elect_now() is False and leadership.role is Role.FOLLOWER

        async def follow() -> None:
            events.append("following")
            try:
                await asyncio.Event().wait()
            finally:
                events.append("stopped following")

        task = asyncio.create_task(leadership.run(lambda: events.append("elected"), lambda: events.append("lost"),
                                                  follow))  # fmt: skip
        for _ in range(200):
            await asyncio.sleep(0.001)
            if leadership.role is Role.LEADER:
                break
        assert leadership.role is Role.LEADER and lock.tries == 4
        assert events == ["following", "stopped following", "elected"]  # never both at once
        lock.lose()
        await asyncio.wait_for(task, 1)
        assert events[-1] == "lost" and leadership.role is Role.STEPPED_DOWN

    asyncio.run(scenario())


def test_a_leader_elected_at_start_is_not_elected_twice() -> None:
    async def scenario() -> None:
        lock = FakeLock()
        leadership = Leadership(lock, FakeClock())
        assert leadership.elect_now()
        elected: list[int] = []
        task = asyncio.create_task(leadership.run(lambda: elected.append(1), lambda: None))
        await asyncio.sleep(0.01)
        lock.lose()
        await asyncio.wait_for(task, 1)
        assert elected == [] and leadership.role is Role.STEPPED_DOWN

    asyncio.run(scenario())


def test_a_check_that_hangs_counts_as_lost() -> None:
    class HangingLock(FakeLock):
        def still_held(self) -> bool:
            import time

            time.sleep(0.3)
            return True

    async def scenario() -> None:
        lock = HangingLock()
        leadership = Leadership(lock, FakeClock(), check_timeout_s=0.05)
        assert leadership.elect_now()
        lost: list[int] = []
        await asyncio.wait_for(leadership.run(lambda: None, lambda: lost.append(1)), 2)
        assert lost == [1]

    asyncio.run(scenario())
