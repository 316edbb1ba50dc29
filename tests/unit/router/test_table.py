from __future__ import annotations

import random

import pytest

from modelhost.router.table import EndpointRoute, InstanceRoute, NoVariant, RoutingTable, VariantRoute


def route() -> EndpointRoute:
    return EndpointRoute(
        name="Ep",
        variants=[
            VariantRoute("A", 3.0, [InstanceRoute("a1", "http://a1"), InstanceRoute("a2", "http://a2")]),
            VariantRoute("B", 1.0, [InstanceRoute("b1", "http://b1")]),
        ],
        log_group="/aws/sagemaker/Endpoints/Ep",
    )


def test_weighted_choice_and_target_variant() -> None:
    table = RoutingTable(random.Random(7))
    table.set(route())
    r = table.get("ep")
    assert r is not None
    picks = [table.choose_variant(r, None).name for _ in range(4000)]
    assert 0.70 < picks.count("A") / len(picks) < 0.80
    assert table.choose_variant(r, "B").name == "B"
    with pytest.raises(NoVariant):
        table.choose_variant(r, "C")


def test_least_outstanding_instance_and_drop() -> None:
    table = RoutingTable()
    table.set(route())
    r = table.get("EP")
    assert r is not None
    a = r.variants[0]
    a.instances[0].in_flight = 2
    assert table.choose_instance(a).instance_id == "a2"  # type: ignore[union-attr]
    a.instances[0].in_flight = 0
    a.instances[1].in_flight = 0
    assert {table.choose_instance(a).instance_id for _ in range(50)} == {"a1", "a2"}  # type: ignore[union-attr]
    table.drop_instance("ep", "a2")
    assert [i.instance_id for i in a.instances] == ["a1"]
    table.remove("ep")
    assert table.get("ep") is None
