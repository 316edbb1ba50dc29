"""The clock every loop and policy takes: wall time for records, monotonic time for deadlines.

Pass a `Clock`; never call `time.time()` or `time.monotonic()` inside a decider or a reconciler.
Tests use `tests.fakes.clock.FakeClock`, which only moves when told.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock epoch seconds (what records and the API show)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, backoff)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a fake clock may return at once)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
