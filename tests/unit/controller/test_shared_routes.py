"""Routes through the store: the leader publishes its table, a follower installs what the leader publishes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.controller.leadership import Leadership
from modelhost.controller.shared_routes import RouteFollower, RoutePublisher, route_table
from modelhost.router.table import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore
from tests.fakes.clock import FakeClock
from tests.unit.controller.test_leadership import FakeLock


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    store = SqliteStore(tmp_path / "modelhost.db")
    store.open()
    yield Records(store)
    store.close()


def route(name: str, *urls: str, weight: float = 1.0) -> EndpointRoute:
    instances = tuple(InstanceRoute(f"i-{i}", url, f"token-{i}") for i, url in enumerate(urls))
    return EndpointRoute(name, (VariantRoute("AllTraffic", weight, instances),), f"/aws/sagemaker/Endpoints/{name}")


def test_a_follower_routes_to_what_the_leader_serves(records: Records) -> None:
    leader, follower = RoutingTable(), RoutingTable()
    publisher, following = RoutePublisher(records, leader, "a:1 (pid 1)"), RouteFollower(records, follower)
    leader.install(route("Ep", "http://127.0.0.1:1001", "http://127.0.0.1:1002"))
    publisher.once()
    following.once()
    installed = follower.get("ep")
    assert installed is not None and installed.route == route("Ep", "http://127.0.0.1:1001", "http://127.0.0.1:1002")

    leader.install(route("Ep", "http://127.0.0.1:1001", weight=0.5))  # scaled in, reweighted
    leader.install(route("Other", "http://127.0.0.1:2001"))
    publisher.once()
    following.once()
    assert follower.installed_routes() == leader.installed_routes()

    leader.remove("Ep")  # deleted
    publisher.once()
    following.once()
    assert follower.get("Ep") is None and follower.get("other") is not None


def test_a_new_leader_clears_the_dead_leaders_routes(records: Records) -> None:
    """The new leader is a former follower: its table holds the routes it followed (to the dead leader's workers)
    when it is elected, and neither routes to them nor publishes them (fails without the follower removing its
    routes when it stops following)."""

    async def scenario() -> None:
        old = RoutingTable()
        old.install(route("Ep", "http://127.0.0.1:1001"))
        RoutePublisher(records, old, "a:1 (pid 1)").once()
        table = RoutingTable()  # server B's one table: followed routes, then its own
        follower, publisher = RouteFollower(records, table, interval_s=0.001), RoutePublisher(records, table, "b:2")
        lock = FakeLock(busy_tries=3)  # A holds the lock for B's first three tries, then dies
        leadership = Leadership(lock, FakeClock(), retry_s=0.001)
        published_at_election: list[list[str]] = []

        def elected() -> None:
            publisher.once()  # the publisher's first pass, as app.py starts it on election
            published_at_election.append([r.route.name for r in route_table(records).list()])

        task = asyncio.create_task(leadership.run(elected, lambda: None, follower.run))
        for _ in range(500):
            await asyncio.sleep(0.001)
            if published_at_election:
                break
        assert lock.tries == 4 and published_at_election == [[]]  # A's route is not published again by B
        assert table.get("Ep") is None  # and B's router does not send to A's dead worker
        table.install(route("Ep", "http://127.0.0.1:3001"))  # B's own worker for the endpoint
        publisher.once()
        assert [(r.leader, r.route.variants[0].instances[0].url) for r in route_table(records).list()] == [
            ("b:2", "http://127.0.0.1:3001")
        ]
        lock.lose()
        await asyncio.wait_for(task, 1)

    asyncio.run(scenario())


def test_a_leader_stopping_gracefully_withdraws_its_routes(records: Records) -> None:
    """Followers then answer ServiceUnavailable, not ModelError from a stopped worker (fails without withdraw)."""
    leader, follower = RoutingTable(), RoutingTable()
    publisher, following = RoutePublisher(records, leader, "a:1 (pid 1)"), RouteFollower(records, follower)
    leader.install(route("Ep", "http://127.0.0.1:1001"))
    publisher.once()
    following.once()
    assert follower.get("Ep") is not None
    publisher.withdraw()
    publisher.once()  # a pass after the withdrawal (its task not cancelled yet) publishes nothing
    assert route_table(records).list() == []
    following.once()
    assert follower.get("Ep") is None


def test_the_publisher_writes_only_what_changed(records: Records, monkeypatch: pytest.MonkeyPatch) -> None:
    table = RoutingTable()
    publisher = RoutePublisher(records, table, "a:1 (pid 1)")
    table.install(route("Ep", "http://127.0.0.1:1001"))
    publisher.once()
    writes: list[str] = []
    real_put = records.store.put
    monkeypatch.setattr(
        records.store, "put", lambda kind, name, data: (writes.append(name), real_put(kind, name, data))
    )
    publisher.once()
    publisher.once()
    assert writes == []


def test_a_follower_keeps_its_suspicion_until_the_route_changes(records: Records) -> None:
    leader, follower = RoutingTable(), RoutingTable()
    publisher, following = RoutePublisher(records, leader, "a:1 (pid 1)"), RouteFollower(records, follower)
    leader.install(route("Ep", "http://127.0.0.1:1001", "http://127.0.0.1:1002"))
    publisher.once()
    following.once()
    follower.report_unreachable("Ep", "i-0")
    following.once()  # the same route again: its router still avoids the instance it could not reach
    assert follower.suspects("Ep") == {"i-0"}
    leader.install(route("Ep", "http://127.0.0.1:1001", "http://127.0.0.1:1003"))
    publisher.once()
    following.once()
    assert follower.suspects("Ep") == set()
