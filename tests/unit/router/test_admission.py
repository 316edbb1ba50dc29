"""Admission: in-flight counts per instance id, leases released once, the queue, suspects and re-read routes."""

from __future__ import annotations

import asyncio
import random

import pytest

from modelhost.errors import Throttled
from modelhost.router.admission import Admission
from modelhost.router.table import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute


def install(table: RoutingTable, *ids: str) -> None:
    instances = tuple(InstanceRoute(i, f"http://{i}") for i in ids)
    table.install(EndpointRoute("Ep", (VariantRoute("A", 1.0, instances),), "/aws/sagemaker/Endpoints/Ep"))


def admission(*ids: str, limit: int = 2, queue: int = 1) -> tuple[RoutingTable, Admission]:
    table = RoutingTable()
    install(table, *ids)
    return table, Admission(table, limit, queue, random.Random(0))


def test_counts_per_instance_id_and_release_exactly_once() -> None:
    async def scenario() -> None:
        _, adm = admission("i1", "i2")
        first = await adm.acquire("ep", "A", set(), 1.0)
        second = await adm.acquire("EP", "A", set(), 1.0)
        assert first is not None and second is not None
        assert {first.instance.instance_id, second.instance.instance_id} == {"i1", "i2"}  # least outstanding
        assert adm.in_flight("i1") == adm.in_flight("i2") == 1
        first.release()
        first.release()  # a second release is a no-op
        assert first.released
        assert adm.in_flight(first.instance.instance_id) == 0
        assert adm.in_flight(second.instance.instance_id) == 1
        second.release()
        assert adm.in_flight("i1") == adm.in_flight("i2") == 0
        assert adm.in_flight("never-seen") == 0

    asyncio.run(scenario())


def test_no_instance_left_is_none_and_a_full_queue_throttles() -> None:
    async def scenario() -> None:
        _, adm = admission("i1", limit=1, queue=0)
        assert await adm.acquire("ep", "A", {"i1"}, 1.0) is None
        assert await adm.acquire("ep", "Nope", set(), 1.0) is None
        assert await adm.acquire("other", "A", set(), 1.0) is None
        held = await adm.acquire("ep", "A", set(), 1.0)
        assert held is not None
        with pytest.raises(Throttled) as caught:
            await adm.acquire("ep", "A", set(), 1.0)
        assert caught.value.code == "ThrottlingException" and caught.value.status == 429
        assert "1 instance(s) × 1 concurrent requests, 0 queued" in caught.value.message
        held.release()

    asyncio.run(scenario())


def test_a_waiter_gets_the_freed_slot_or_is_throttled_at_its_deadline() -> None:
    async def scenario() -> None:
        _, adm = admission("i1", limit=1, queue=1)
        held = await adm.acquire("ep", "A", set(), 1.0)
        assert held is not None
        waiter = asyncio.ensure_future(adm.acquire("ep", "A", set(), 5.0))
        await asyncio.sleep(0.01)
        assert adm.waiting("ep", "A") == 1
        held.release()
        lease = await asyncio.wait_for(waiter, 1.0)
        assert lease is not None and adm.in_flight("i1") == 1
        with pytest.raises(Throttled, match="stayed at capacity"):
            await adm.acquire("ep", "A", set(), 0.05)
        lease.release()

    asyncio.run(scenario())


def test_suspects_are_avoided_but_still_used_when_alone() -> None:
    async def scenario() -> None:
        table, adm = admission("i1", "i2", limit=8)
        table.report_unreachable("ep", "i1")
        leases = [await adm.acquire("ep", "A", set(), 1.0) for _ in range(3)]
        assert {lease.instance.instance_id for lease in leases if lease} == {"i2"}
        alone = await adm.acquire("ep", "A", {"i2"}, 1.0)
        assert alone is not None and alone.instance.instance_id == "i1"
        table.install(table.get("ep").route)  # type: ignore[union-attr]  # re-admitted
        again = await adm.acquire("ep", "A", set(), 1.0)
        assert again is not None and again.instance.instance_id == "i1"  # fewer in flight, trusted again

    asyncio.run(scenario())


def test_a_waiter_sees_the_route_the_controller_installs_meanwhile() -> None:
    async def scenario() -> None:
        table, adm = admission("old", limit=1, queue=1)
        held = await adm.acquire("ep", "A", set(), 1.0)
        assert held is not None
        waiter = asyncio.ensure_future(adm.acquire("ep", "A", set(), 5.0))
        await asyncio.sleep(0.01)
        install(table, "new")  # "old" is drained out of the route
        held.release()
        lease = await asyncio.wait_for(waiter, 1.0)
        assert lease is not None and lease.instance.instance_id == "new"
        assert adm.in_flight("old") == 0

    asyncio.run(scenario())
