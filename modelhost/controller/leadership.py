"""Leadership among the servers of one store: who runs the control loop, and what the others do meanwhile.

Every server answers the whole API; only the leader reconciles (the control loop, transform jobs, async
inference, autoscaling) and so only the leader starts workers. `Leadership.run` follows (the caller's `follow`,
e.g. installing the routes the leader publishes) while it campaigns for the store's leader lock
(store/leader.py) every `retry_s`; once elected it stops following and calls `on_elected`, then checks the lock
every `check_s`. A leader whose lock is gone (its database connection broke) awaits `on_lost` and leads no
more: another server may already be leading, so `on_lost` must stop every leader duty and this server's workers
before it returns (app.py does, then stops the server, as crash-only design wants; a process supervisor starts
it again as a follower). An `on_elected` that raises counts as a lost lock: the server must not sit holding the
lock without leading.

With SQLite the lock is always held (one server per home), so the server leads from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable

from modelhost.clock import Clock
from modelhost.store.leader import LeaderLock

log = logging.getLogger(__name__)

RETRY_S = 1.0  # how often a follower tries the lock (takeover comes within this of the leader's death)
CHECK_S = 1.0  # how often the leader checks that its lock is still held
CHECK_TIMEOUT_S = 5.0  # a check that does not answer within this counts as lost (a hung network)


class Role(enum.Enum):
    FOLLOWER = "follower"
    LEADER = "leader"
    STEPPED_DOWN = "stepped down"  # lost the lock; the server is stopping


class Leadership:
    def __init__(
        self,
        lock: LeaderLock,
        clock: Clock,
        *,
        retry_s: float = RETRY_S,
        check_s: float = CHECK_S,
        check_timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self._lock = lock
        self._clock = clock
        self._retry_s = retry_s
        self._check_s = check_s
        self._check_timeout_s = check_timeout_s
        self.role = Role.FOLLOWER
        self.elected_at: float | None = None  # monotonic, once elected
        self.tries = 0  # lock tries so far (while following)

    def elect_now(self) -> bool:
        """One try, blocking (at start-up, before the server answers): whether this server leads from the start."""
        self.tries += 1
        if not self._lock.try_acquire():
            return False
        self._elected()
        return True

    async def run(
        self,
        on_elected: Callable[[], None],
        on_lost: Callable[[], Awaitable[None] | None],
        follow: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Unless `elect_now` already made this server the leader: `follow()` and campaign until elected, then
        `on_elected()`. Then lead until the lock is lost, `on_lost()` (awaited when it is a coroutine) and return."""
        if self.role is not Role.LEADER:
            following = asyncio.ensure_future(follow()) if follow is not None else None
            try:
                await self._campaign()
            finally:
                if following is not None:
                    following.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await following
            self._elected()
            try:
                on_elected()
            except Exception:
                log.exception("leadership: this server could not start leading; it steps down")
                await self._step_down(on_lost)
                return
        await self._hold()
        await self._step_down(on_lost)

    async def _step_down(self, on_lost: Callable[[], Awaitable[None] | None]) -> None:
        self.role = Role.STEPPED_DOWN
        stopping = on_lost()
        if inspect.isawaitable(stopping):
            await stopping

    def _elected(self) -> None:
        self.role = Role.LEADER
        self.elected_at = self._clock.monotonic()
        log.info("leadership: this server is the leader%s", f" (after {self.tries} tries)" if self.tries > 1 else "")

    async def _campaign(self) -> None:
        while True:
            self.tries += 1
            if await asyncio.to_thread(self._lock.try_acquire):
                return
            if self.tries <= 2:
                log.info("leadership: another server leads this store; following it (trying every %.0f s)",
                         self._retry_s)  # fmt: skip
            await self._clock.sleep(self._retry_s)

    async def _hold(self) -> None:
        while True:
            await self._clock.sleep(self._check_s)
            try:
                held = await asyncio.wait_for(asyncio.to_thread(self._lock.still_held), self._check_timeout_s)
            except TimeoutError:
                held = False
            if not held:
                log.error("leadership: the leader lock is lost (its database connection is gone); "
                          "this server stops leading")  # fmt: skip
                return

    def release(self) -> None:
        """Gives the lock up (at shutdown, after the workers stopped)."""
        self._lock.release()
