"""The routing table: immutable snapshots installed by one owner, reports instead of edits, pure choices."""

from __future__ import annotations

import dataclasses
import random

import pytest

from modelhost.router.table import (
    EndpointRoute,
    InstanceRoute,
    NoVariant,
    RoutingTable,
    VariantRoute,
    choose_instance,
)


def route(*, a: tuple[str, ...] = ("a1", "a2"), weight_a: float = 3.0) -> EndpointRoute:
    return EndpointRoute(
        name="Ep",
        variants=(
            VariantRoute("A", weight_a, tuple(InstanceRoute(i, f"http://{i}") for i in a)),
            VariantRoute("B", 1.0, (InstanceRoute("b1", "http://b1"),)),
        ),
        log_group="/aws/sagemaker/Endpoints/Ep",
    )


def test_weighted_choice_and_target_variant() -> None:
    table = RoutingTable(random.Random(7))
    table.install(route())
    installed = table.get("ep")
    assert installed is not None
    r = installed.route
    picks = [table.choose_variant(r, None).name for _ in range(4000)]
    assert 0.70 < picks.count("A") / len(picks) < 0.80
    assert table.choose_variant(r, "B").name == "B"
    with pytest.raises(NoVariant):
        table.choose_variant(r, "C")


def test_a_variant_without_instances_is_not_drawn() -> None:
    table = RoutingTable(random.Random(1))
    r = route(a=())
    assert {table.choose_variant(r, None).name for _ in range(50)} == {"B"}


def test_snapshots_are_immutable() -> None:
    r = route()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.variants[0].weight = 0.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.variants[0].instances[0].url = "http://elsewhere"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        r.variants[0].instances.append(InstanceRoute("x", "http://x"))  # type: ignore[attr-defined]
    table = RoutingTable()
    installed = table.install(r)
    assert installed.route is r
    with pytest.raises(dataclasses.FrozenInstanceError):
        installed.generation = 99  # type: ignore[misc]


def test_least_outstanding_instance_from_the_given_counts() -> None:
    rng = random.Random(3)
    instances = route().variants[0].instances
    assert choose_instance(instances, {"a1": 2}, rng).instance_id == "a2"  # type: ignore[union-attr]
    assert {choose_instance(instances, {}, rng).instance_id for _ in range(50)} == {"a1", "a2"}  # type: ignore[union-attr]
    assert choose_instance(instances, {}, rng, exclude={"a1", "a2"}) is None
    assert choose_instance(instances, {"a1": 4, "a2": 4}, rng, limit=4) is None
    assert choose_instance(instances, {"a1": 4, "a2": 3}, rng, limit=4).instance_id == "a2"  # type: ignore[union-attr]


def test_a_suspect_is_chosen_only_when_no_other_instance_is_available() -> None:
    rng = random.Random(5)
    instances = route().variants[0].instances
    picks = {choose_instance(instances, {"a2": 9}, rng, suspects={"a1"}).instance_id for _ in range(30)}  # type: ignore[union-attr]
    assert picks == {"a2"}  # busier, but trusted
    only = choose_instance(instances, {}, rng, suspects={"a1"}, exclude={"a2"})
    assert only is not None and only.instance_id == "a1"  # the only one left
    full = choose_instance(instances, {"a2": 4}, rng, limit=4, suspects={"a1"})
    assert full is not None and full.instance_id == "a1"  # the trusted one has no slot


def test_report_makes_a_suspect_and_never_removes_the_instance() -> None:
    table = RoutingTable()
    before = table.install(route())
    table.report_unreachable("EP", "a1")
    after = table.get("ep")
    assert after is before  # the route is not edited
    assert [i.instance_id for i in after.route.variants[0].instances] == ["a1", "a2"]
    assert table.suspects("ep") == {"a1"}
    assert table.take_unreachable() == [("Ep", "a1")]
    assert table.take_unreachable() == []  # drained
    assert table.suspects("ep") == {"a1"}  # still suspect until the controller installs the route again


def test_reinstalling_clears_the_suspicion_and_keeps_the_generation() -> None:
    table = RoutingTable()
    first = table.install(route())
    table.report_unreachable("ep", "a1")
    again = table.install(route())  # equal value: the controller re-admits the instance
    assert table.suspects("ep") == frozenset()
    assert again.generation == first.generation
    assert table.take_unreachable() == [("Ep", "a1")]  # reports stay for the controller to act on


def test_reports_about_unknown_instances_or_endpoints_are_dropped() -> None:
    table = RoutingTable()
    table.install(route())
    table.report_unreachable("ep", "gone-already")
    table.report_unreachable("other", "a1")
    assert table.take_unreachable() == []
    assert table.suspects("ep") == frozenset()


def test_generation_changes_with_a_new_fleet_only() -> None:
    table = RoutingTable()
    g1 = table.install(route()).generation
    assert table.install(route(a=("a1", "a2", "a3"))).generation == g1  # scaled out
    assert table.install(route(a=("a1",), weight_a=0.5)).generation == g1  # scaled in, new weight
    g2 = table.install(
        EndpointRoute("Ep", (VariantRoute("A", 1.0, (InstanceRoute("n1", "http://n1"),)),), "/aws/x")
    ).generation
    assert g2 != g1  # blue/green: no instance in common
    table.remove("ep")
    assert table.get("ep") is None
    assert table.install(route()).generation not in (g1, g2)  # deleted and re-created


def test_remove_forgets_suspects_and_reports() -> None:
    table = RoutingTable()
    table.install(route())
    table.report_unreachable("ep", "b1")
    table.remove("EP")
    assert table.take_unreachable() == []
    assert table.suspects("ep") == frozenset()
