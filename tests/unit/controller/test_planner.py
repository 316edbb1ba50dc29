"""The planner's decisions, table-driven: every status × fleet situation → the actions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelhost.controller.planner import (
    Action,
    Delete,
    Deploy,
    ExitedInstance,
    FleetView,
    Publish,
    Reap,
    ScaleDown,
    ScaleUp,
    Update,
    VariantView,
    orphaned_fleets,
    plan_endpoint,
)
from modelhost.resources.endpoint import Endpoint
from modelhost.resources.status import EndpointStatus as S
from tests.fakes.records import endpoint, variant_spec

NOW = 5000.0
ONE = FleetView(live=True, variants={"AllTraffic": VariantView(instances=("g0",))})
TWO = FleetView(live=True, variants={"AllTraffic": VariantView(instances=("g0", "g1"))})
EXITED = ExitedInstance("g0", "g0-c0", 137)


def desired(e: Endpoint, count: int) -> Endpoint:
    return replace(e, states=tuple(replace(s, desired_count=count) for s in e.states))


CASES: list[tuple[str, Endpoint, FleetView, list[Action]]] = [
    ("creating deploys", endpoint(status=S.CREATING), FleetView(), [Deploy()]),
    ("deleting deletes", endpoint(status=S.DELETING), ONE, [Delete()]),
    ("deleting cancels a deploy", endpoint(status=S.DELETING), FleetView(operation="deploy"), [Delete()]),
    ("deleting twice is one delete", endpoint(status=S.DELETING), FleetView(operation="delete"), []),
    ("one operation at a time", endpoint(status=S.CREATING), FleetView(operation="deploy"), []),
    ("backing off after a failed operation", endpoint(status=S.CREATING), FleetView(retry_after=NOW + 1), []),
    ("backoff over", endpoint(status=S.CREATING), FleetView(retry_after=NOW - 1), [Deploy()]),
    ("failed stays failed", endpoint(status=S.FAILED), FleetView(), []),
    ("in service after a restart redeploys", endpoint(status=S.IN_SERVICE), FleetView(), [Deploy()]),
    ("updating after a restart redeploys first", endpoint(status=S.UPDATING, pending=(variant_spec(),)),
     FleetView(), [Deploy()]),
    ("rolling back after a restart redeploys", endpoint(status=S.ROLLING_BACK), FleetView(), [Deploy()]),
    ("pending update runs blue/green", endpoint(status=S.UPDATING, pending=(variant_spec(),)), ONE, [Update()]),
    ("rollback done", endpoint(status=S.ROLLING_BACK), ONE, [Publish(in_service=True)]),
    ("in service and converged", endpoint(status=S.IN_SERVICE), ONE, [Publish(in_service=False)]),
    ("capacity update converged", endpoint(status=S.UPDATING), ONE, [Publish(in_service=True)]),
    ("scale out", desired(endpoint(status=S.UPDATING), 2), ONE, [ScaleUp("AllTraffic", 1)]),
    ("scale in, newest first", desired(endpoint(status=S.UPDATING), 1),
     FleetView(live=True, variants={"AllTraffic": VariantView(instances=("g0", "g1", "g2"))}),
     [ScaleDown("AllTraffic", ("g2", "g1"))]),
    ("starting counts as coming", desired(endpoint(status=S.UPDATING), 2),
     FleetView(live=True, variants={"AllTraffic": VariantView(instances=("g0",), starting=1)}),
     [Publish(in_service=False)]),
    ("dead instance reaped, replaced next pass", endpoint(status=S.IN_SERVICE),
     FleetView(live=True, variants={"AllTraffic": VariantView(instances=("g0",), exited=(EXITED,))}),
     [Reap("AllTraffic", EXITED), Publish()]),
    ("replacement waits for the variant's backoff", endpoint(status=S.IN_SERVICE),
     FleetView(live=True, variants={"AllTraffic": VariantView(instances=(), failures=3, retry_after=NOW + 4)}),
     [Publish()]),
    ("replacement after the backoff", endpoint(status=S.IN_SERVICE),
     FleetView(live=True, variants={"AllTraffic": VariantView(instances=(), failures=3, retry_after=NOW - 1)}),
     [ScaleUp("AllTraffic", 1)]),
    ("two instances, one dies", desired(endpoint(status=S.IN_SERVICE), 2),
     FleetView(live=True, variants={"AllTraffic": VariantView(instances=("g0", "g1"), exited=(EXITED,))}),
     [Reap("AllTraffic", EXITED), Publish()]),
    ("scale to zero", desired(endpoint(status=S.UPDATING), 0), ONE, [ScaleDown("AllTraffic", ("g0",))]),
    ("two variants: the first needing work goes first",
     endpoint(status=S.IN_SERVICE, variants=(variant_spec("A"), variant_spec("B"))),
     FleetView(live=True, variants={"A": VariantView(instances=("a0",)), "B": VariantView()}),
     [ScaleUp("B", 1)]),
    ("a variant in backoff does not hold up another's reap",
     endpoint(status=S.IN_SERVICE, variants=(variant_spec("A"), variant_spec("B"))),
     FleetView(live=True, variants={"A": VariantView(failures=3, retry_after=NOW + 30),
                                    "B": VariantView(instances=("b0",), exited=(ExitedInstance("b0", "b0-c0", 1),))}),
     [Reap("B", ExitedInstance("b0", "b0-c0", 1)), Publish()]),
    ("a variant in backoff does not hold up another's scale-out",
     desired(endpoint(status=S.UPDATING, variants=(variant_spec("A"), variant_spec("B"))), 2),
     FleetView(live=True, variants={"A": VariantView(failures=1, retry_after=NOW + 30),
                                    "B": VariantView(instances=("b0",))}),
     [ScaleUp("B", 1)]),
    ("a crash-looping capacity update is over", desired(endpoint(status=S.UPDATING), 2),
     FleetView(live=True, variants={"AllTraffic": VariantView(instances=("g0",), failures=3, retry_after=NOW + 9)}),
     [Publish(in_service=True)]),
    ("created, but writing InService had failed", endpoint(status=S.CREATING), ONE, [Publish(in_service=True)]),
    ("deleting waits for its backoff", endpoint(status=S.DELETING), FleetView(retry_after=NOW + 1), []),
    ("updating with too many counts drains", desired(endpoint(status=S.UPDATING), 1), TWO,
     [ScaleDown("AllTraffic", ("g1",))]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "record", "fleet", "expected"), CASES, ids=[c[0] for c in CASES])
def test_plan(case: str, record: Endpoint, fleet: FleetView, expected: list[Action]) -> None:
    assert plan_endpoint(record, fleet, NOW) == expected


def test_every_status_is_planned_for() -> None:
    planned = {c[1].status for c in CASES}
    assert planned == set(S)


def test_orphaned_fleets_stop_unless_their_record_is_only_unreadable() -> None:
    assert orphaned_fleets({"a", "b", "c"}, {"a"}, {"b"}) == {"c"}
