"""Admission control: a concurrency limit per instance, a bounded wait queue per variant, and the count of
requests in flight on each instance (keyed by instance id; the controller drains by it).

A request takes a slot on the least-busy instance under its limit (an instance the router reported
unreachable only when no other has a slot); when every instance is full it waits in the variant's queue
(up to its deadline); when the queue is full too it is refused at once with a throttling error that boto3
retries. Every wait re-reads the installed route, so an instance the controller took out is never chosen.
Slots are released by whoever holds the lease, exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from modelhost.errors import Throttled
from modelhost.router.table import InstanceRoute, RoutingTable, VariantRoute, choose_instance


@dataclass(slots=True)
class Lease:
    """A slot on one instance; `release()` gives it back (the first call only)."""

    instance: InstanceRoute
    _admission: Admission
    _key: tuple[str, str]
    _released: bool = field(default=False)

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._give_back(self._key, self.instance.instance_id)


class Admission:
    def __init__(
        self, table: RoutingTable, max_per_instance: int, max_queue: int, rng: random.Random | None = None
    ) -> None:
        self._table = table
        self._max_per_instance = max_per_instance
        self._max_queue = max_queue
        self._rng = rng or random.Random()
        self._in_flight: dict[str, int] = {}  # instance id -> requests sent and not yet answered
        self._freed: dict[tuple[str, str], asyncio.Condition] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    def in_flight(self, instance_id: str) -> int:
        """Requests holding a slot on the instance (the controller waits for 0 before stopping it)."""
        return self._in_flight.get(instance_id, 0)

    def waiting(self, endpoint: str, variant: str) -> int:
        return self._waiting.get((endpoint.lower(), variant), 0)

    async def acquire(self, endpoint: str, variant_name: str, exclude: set[str], timeout_s: float) -> Lease | None:
        """A slot on the least-busy instance of the variant's installed route not in `exclude`; None when the
        variant has no such instance.

        Raises Throttled when all instances are at their limit and the queue is full, or when the wait
        outlasts `timeout_s`.
        """
        key = (endpoint.lower(), variant_name)
        deadline = time.monotonic() + timeout_s
        while True:
            variant = self._current(endpoint, variant_name)
            if variant is None or all(i.instance_id in exclude for i in variant.instances):
                return None
            instance = choose_instance(
                variant.instances,
                self._in_flight,
                self._rng,
                limit=self._max_per_instance,
                exclude=exclude,
                suspects=self._table.suspects(endpoint),
            )
            if instance is not None:
                self._in_flight[instance.instance_id] = self.in_flight(instance.instance_id) + 1
                return Lease(instance, self, key)
            if self._waiting.get(key, 0) >= self._max_queue:
                raise Throttled(
                    f"Endpoint {endpoint} is at capacity ({len(variant.instances)} instance(s) × "
                    f"{self._max_per_instance} concurrent requests, {self._max_queue} queued); retry with backoff."
                )
            await self._wait(key, deadline, endpoint)

    def _current(self, endpoint: str, variant_name: str) -> VariantRoute | None:
        installed = self._table.get(endpoint)
        return None if installed is None else installed.route.variant(variant_name)

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

    def _give_back(self, key: tuple[str, str], instance_id: str) -> None:
        """Called by `Lease.release` only, once per lease."""
        left = self.in_flight(instance_id) - 1
        if left > 0:
            self._in_flight[instance_id] = left
        else:
            self._in_flight.pop(instance_id, None)
        condition = self._freed.get(key)
        if condition is not None and self._waiting.get(key, 0):
            asyncio.get_running_loop().create_task(self._notify(condition))

    @staticmethod
    async def _notify(condition: asyncio.Condition) -> None:
        async with condition:
            condition.notify(1)
