"""A clock that moves only when told (or when something sleeps on it)."""

from __future__ import annotations

import asyncio


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 1000.0

    def now(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        """Time passes at once; the caller still yields so other tasks run."""
        self.advance(seconds)
        await asyncio.sleep(0)
