"""Admission control: a concurrency limit per instance, a bounded wait queue per variant, and the count of
requests in flight on each instance (keyed by instance id; the controller drains by it).

A request takes a slot on the least-busy instance under its limit (an instance the router reported
unreachable only when no other has a slot); when every instance is full it waits in the variant's queue
(up to its deadline); when the queue is full too it is refused at once with a throttling error that boto3
retries. Every wait re-reads the installed route, so an instance the controller took out is never chosen.
Slots are released by whoever holds the lease, exactly once.

Scale to zero: when a variant's route has no instance, `cold_start(endpoint, variant)` (the controller's)
says whether one is being started for it; if so the request waits in the same bounded queue until the route
gets an instance (the routing table tells admission of every new route), and its lease says how long it
waited. A request at zero that finds the queue full, or waits past its deadline, is throttled with a
Retry-After, never refused as missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelhost.errors import Throttled
from modelhost.router.table import InstanceRoute, RoutingTable, VariantRoute, choose_instance

COLD_RETRY_AFTER_S = 5  # the Retry-After of a request refused while its variant starts from zero


@dataclass(slots=True)
class Lease:
    """A slot on one instance; `release()` gives it back (the first call only)."""

    instance: InstanceRoute
    _admission: Admission
    _key: tuple[str, str]
    _released: bool = field(default=False)
    cold_start_s: float = 0.0  # how long the request waited for the variant to start from zero instances

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._give_back(self._key, self.instance.instance_id)


class Admission:
    def __init__(
        self,
        table: RoutingTable,
        max_per_instance: int,
        max_queue: int,
        rng: random.Random | None = None,
        cold_start: Callable[[str, str], bool] | None = None,
    ) -> None:
        self._table = table
        self._cold_start = cold_start  # (endpoint, variant) -> an instance is being started for it
        table.on_install(self._route_changed)
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
        cold_since: float | None = None
        while True:
            variant = self._current(endpoint, variant_name)
            if variant is None:
                return None
            if not variant.instances:  # at zero: wait for the cold start, when there is one
                if self._cold_start is None or not self._cold_start(endpoint, variant_name):
                    return None
                cold_since = time.monotonic() if cold_since is None else cold_since
                if self._waiting.get(key, 0) >= self._max_queue:
                    raise Throttled(
                        f"Endpoint {endpoint} is starting from zero instances and {self._max_queue} requests already "
                        "wait for it; retry shortly.",
                        retry_after_s=COLD_RETRY_AFTER_S,
                    )
                await self._wait(key, deadline, endpoint, cold=True)
                continue
            if all(i.instance_id in exclude for i in variant.instances):
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
                waited = 0.0 if cold_since is None else time.monotonic() - cold_since
                return Lease(instance, self, key, cold_start_s=waited)
            if self._waiting.get(key, 0) >= self._max_queue:
                raise Throttled(
                    f"Endpoint {endpoint} is at capacity ({len(variant.instances)} instance(s) × "
                    f"{self._max_per_instance} concurrent requests, {self._max_queue} queued); retry with backoff."
                )
            await self._wait(key, deadline, endpoint)

    def _current(self, endpoint: str, variant_name: str) -> VariantRoute | None:
        installed = self._table.get(endpoint)
        return None if installed is None else installed.route.variant(variant_name)

    async def _wait(self, key: tuple[str, str], deadline: float, endpoint: str, *, cold: bool = False) -> None:
        condition = self._freed.setdefault(key, asyncio.Condition())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with condition:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(condition.wait(), timeout=remaining)
        except TimeoutError as exc:
            if cold:
                raise Throttled(
                    f"Endpoint {endpoint} is still starting from zero instances; retry shortly.",
                    retry_after_s=COLD_RETRY_AFTER_S,
                ) from exc
            raise Throttled(f"Endpoint {endpoint} stayed at capacity while the request waited; retry later.") from exc
        finally:
            self._waiting[key] -= 1

    def _route_changed(self, endpoint: str) -> None:
        """A new route for `endpoint` (the table calls this): every request waiting on it looks again."""
        prefix = endpoint.lower()
        for key, condition in self._freed.items():
            if key[0] == prefix and self._waiting.get(key, 0):
                with contextlib.suppress(RuntimeError):  # no running loop: nobody can be waiting
                    asyncio.get_running_loop().create_task(self._notify_all(condition))

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

    @staticmethod
    async def _notify_all(condition: asyncio.Condition) -> None:
        async with condition:
            condition.notify_all()
