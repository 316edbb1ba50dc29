"""Instances in use per instance type, counted from endpoint records (pure; used by the API's quota checks)."""

from __future__ import annotations

from collections.abc import Iterable

from modelhost.resources.endpoint import Endpoint, VariantSpec, VariantState
from modelhost.resources.status import HOLDS_INSTANCES


def instances_in_use(endpoints: Iterable[Endpoint]) -> dict[str, int]:
    """Instances desired per instance type by endpoints that hold (or are getting) instances; during a
    blue/green update both fleets count."""
    used: dict[str, int] = {}
    for endpoint in endpoints:
        if endpoint.status not in HOLDS_INSTANCES:
            continue
        fleets = [(endpoint.variants, endpoint.states)]
        if endpoint.pending is not None:
            fleets.append((endpoint.pending.variants, endpoint.pending.states))
        for specs, states in fleets:
            for spec in specs:
                used[spec.instance_type] = used.get(spec.instance_type, 0) + _desired(states, spec)
    return used


def _desired(states: tuple[VariantState, ...], spec: VariantSpec) -> int:
    return next((s.desired_count for s in states if s.name == spec.name), 0)
