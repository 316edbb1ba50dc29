"""Admission control: a concurrency limit per instance and a bounded wait queue per variant.

A request takes a slot on the least-busy instance under its limit; when every instance is full it waits
in the variant's queue (up to its deadline); when the queue is full too it is refused at once with a
throttling error that boto3 retries. Slots are released by the one who holds the lease.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from modelhost.errors import RuntimeApiError
from modelhost.router.table import InstanceRoute, RoutingTable, VariantRoute


class Throttled(RuntimeApiError):
    """Too many requests for the endpoint right now; 429 so every AWS SDK retries it with backoff."""

    code = "ThrottlingException"
    status = 429


@dataclass(slots=True)
class Lease:
    """A slot on one instance; `release()` gives it back (idempotent)."""

    instance: InstanceRoute
    _admission: Admission
    _key: tuple[str, str]
    _released: bool = field(default=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission.give_back(self._key, self.instance)


class Admission:
    def __init__(self, table: RoutingTable, max_per_instance: int, max_queue: int) -> None:
        self._table = table
        self._max_per_instance = max_per_instance
        self._max_queue = max_queue
        self._freed: dict[tuple[str, str], asyncio.Condition] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    def waiting(self, endpoint: str, variant: str) -> int:
        return self._waiting.get((endpoint.lower(), variant), 0)

    async def acquire(self, endpoint: str, variant: VariantRoute, exclude: set[str], timeout_s: float) -> Lease | None:
        """A slot on the least-busy instance not in `exclude`; None when the variant has no such instance.

        Raises Throttled when all instances are at their limit and the queue is full, or when the wait
        outlasts `timeout_s`.
        """
        key = (endpoint.lower(), variant.name)
        deadline = time.monotonic() + timeout_s
        while True:
            instance = self._table.choose_instance(variant, exclude=exclude)
            if instance is None:
                return None
            if instance.in_flight < self._max_per_instance:
                instance.in_flight += 1
                return Lease(instance, self, key)
            if self._waiting.get(key, 0) >= self._max_queue:
                raise Throttled(
                    f"Endpoint {endpoint} is at capacity ({len(variant.instances)} instance(s) × "
                    f"{self._max_per_instance} concurrent requests, {self._max_queue} queued); retry with backoff."
                )
            await self._wait(key, deadline, endpoint)

    async def _wait(self, key: tuple[str, str], deadline: float, endpoint: str) -> None:
        condition = self._freed.setdefault(key, asyncio.Condition())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with condition:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(condition.wait(), timeout=remaining)
        except TimeoutError as exc:
            raise Throttled(f"Endpoint {endpoint} stayed at capacity while the request waited; retry later.") from exc
        finally:
            self._waiting[key] -= 1

    def give_back(self, key: tuple[str, str], instance: InstanceRoute) -> None:
        instance.in_flight -= 1
        condition = self._freed.get(key)
        if condition is not None and self._waiting.get(key, 0):
            asyncio.get_running_loop().create_task(self._notify(condition))

    @staticmethod
    async def _notify(condition: asyncio.Condition) -> None:
        async with condition:
            condition.notify(1)
