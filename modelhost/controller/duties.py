"""The leader's duties (the control loop, scaling, transform jobs, async inference, publishing routes): tasks started
on election and stopped together, at once, when the lock is lost or the server stops.

A duty that fails is started again after a back-off (doubling up to `MAX_BACKOFF_S`), and says why in
`problems()` (health shows it) until it runs again, so a leader never sits holding the lock doing nothing: e.g.
the stored async requests cannot be read right after a database restart while the lock's connection already
works. `cancel_all` is synchronous: once it returns, no duty takes another step (each stops at its next await).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


class Duties:
    def __init__(self, *, first_backoff_s: float = FIRST_BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._problems: dict[str, str] = {}

    def start(
        self, name: str, work: Callable[[], Coroutine[Any, Any, None]], *, prepare: Callable[[], object] | None = None
    ) -> None:
        """Runs `work()` as the duty `name`: first `prepare()` (a blocking start-up step, e.g. loading stored
        requests) until it succeeds, then `work()`, started again whenever it fails."""
        self._tasks[name] = asyncio.create_task(self._supervise(name, work, prepare), name=f"leader duty: {name}")

    def running(self) -> list[str]:
        return sorted(name for name, task in self._tasks.items() if not task.done())

    def problems(self) -> list[str]:
        return [self._problems[name] for name in sorted(self._problems)]

    def cancel_all(self) -> None:
        """Every duty cancelled now (synchronous; `stop` also waits for them)."""
        for task in self._tasks.values():
            task.cancel()

    async def stop(self) -> None:
        """Every duty cancelled and finished; never raises (a duty that failed was logged)."""
        self.cancel_all()
        tasks, self._tasks = list(self._tasks.items()), {}
        for name, task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("leader duty %s failed", name)
        self._problems.clear()

    async def _supervise(
        self, name: str, work: Callable[[], Coroutine[Any, Any, None]], prepare: Callable[[], object] | None
    ) -> None:
        delay = self._first_backoff_s
        prepared = prepare is None
        while True:
            try:
                if not prepared:
                    assert prepare is not None
                    prepare()
                    prepared = True
                self._problems.pop(name, None)
                await work()
                return  # a duty that ends by itself (its loop was told to close) is done
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                step = "failed" if prepared else "could not start"
                if name not in self._problems:
                    log.warning("leader duty %s %s (%s); trying again in %.1f s", name, step, exc, delay,
                                exc_info=prepared)  # fmt: skip
                self._problems[name] = f"leader duty {name} {step} ({exc}); retrying"
            await asyncio.sleep(delay)
            delay = min(self._max_backoff_s, delay * 2)
