"""Routes through the store: the leader publishes its table, a follower installs what the leader publishes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.controller.shared_routes import RouteFollower, RoutePublisher, route_table
from modelhost.router.table import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore


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
    old = RoutingTable()
    old.install(route("Ep", "http://127.0.0.1:1001"))
    RoutePublisher(records, old, "a:1 (pid 1)").once()
    new = RoutingTable()
    RoutePublisher(records, new, "b:2 (pid 2)").once()  # elected with nothing running yet
    assert route_table(records).list() == []
    new.install(route("Ep", "http://127.0.0.1:3001"))
    RoutePublisher(records, new, "b:2 (pid 2)").once()
    assert [r.leader for r in route_table(records).list()] == ["b:2 (pid 2)"]


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
