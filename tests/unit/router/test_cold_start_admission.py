"""Admission at zero instances: a request for a variant that is starting waits for the route to get an
instance (and its lease says how long it waited); past the queue or the deadline it is throttled with a
Retry-After; a variant that is not starting is refused at once as before."""

from __future__ import annotations

import asyncio

import pytest

from modelhost.errors import Throttled
from modelhost.router.admission import COLD_RETRY_AFTER_S, Admission
from modelhost.router.table import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute


def route(*instances: str) -> EndpointRoute:
    members = tuple(InstanceRoute(i, f"http://{i}") for i in instances)
    return EndpointRoute("Ep", (VariantRoute("A", 1.0, members),), "/aws/sagemaker/Endpoints/Ep")


def test_a_request_at_zero_waits_for_the_instance() -> None:
    table = RoutingTable()
    table.install(route())
    asked: list[tuple[str, str]] = []

    def cold_start(endpoint: str, variant: str) -> bool:
        asked.append((endpoint, variant))
        return True

    admission = Admission(table, 4, 4, cold_start=cold_start)

    async def go() -> float:
        waiter = asyncio.create_task(admission.acquire("ep", "A", set(), 5.0))
        await asyncio.sleep(0.2)
        assert not waiter.done() and admission.waiting("ep", "A") == 1
        table.install(route("i1"))  # the controller's new instance is in the route
        lease = await asyncio.wait_for(waiter, 2.0)
        assert lease is not None and lease.instance.instance_id == "i1"
        lease.release()
        return lease.cold_start_s

    waited = asyncio.run(go())
    assert 0.15 < waited < 2.0
    assert asked and asked[0] == ("ep", "A")


def test_a_variant_that_is_not_starting_is_refused_at_once() -> None:
    table = RoutingTable()
    table.install(route())
    admission = Admission(table, 4, 4, cold_start=lambda endpoint, variant: False)
    assert asyncio.run(admission.acquire("ep", "A", set(), 5.0)) is None
    assert asyncio.run(Admission(table, 4, 4).acquire("ep", "A", set(), 5.0)) is None  # no cold starts at all


def test_past_the_queue_or_the_deadline_it_is_throttled_with_retry_after() -> None:
    table = RoutingTable()
    table.install(route())
    admission = Admission(table, 4, 1, cold_start=lambda endpoint, variant: True)

    async def go() -> None:
        first = asyncio.create_task(admission.acquire("ep", "A", set(), 0.5))
        await asyncio.sleep(0.05)
        with pytest.raises(Throttled) as full:
            await admission.acquire("ep", "A", set(), 0.5)
        assert full.value.retry_after_s == COLD_RETRY_AFTER_S and "starting from zero" in full.value.message
        with pytest.raises(Throttled) as late:
            await first
        assert late.value.retry_after_s == COLD_RETRY_AFTER_S and "still starting" in late.value.message

    asyncio.run(go())
