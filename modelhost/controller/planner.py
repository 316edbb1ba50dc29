"""The control loop's decisions, as a pure function: (endpoint record, observed fleet, now) → actions.

No I/O and no clock: `now` is passed in (monotonic seconds, as in `FleetView.retry_after`). The applier
(`controller/apply.py`) carries the actions out; the loop (`controller/loop.py`) observes, plans and applies.

    status        fleet            → actions
    Deleting      any              → Delete (cancels whatever runs)
    any           an operation runs → nothing (one operation at a time)
    any           backing off      → nothing
    Creating      -                → Deploy
    InService/Updating/RollingBack  not running (a restart) → Deploy (the current configuration)
    Updating      pending update   → Update (blue/green, rolls back on failure)
    RollingBack   running          → Publish(in_service)   (the rollback is done)
    Creating      running          → Publish(in_service)   (deployed; writing that down had failed)
    InService/Updating  running    → Reap exited instances, then ScaleDown | ScaleUp | Publish; an Updating
                                     endpoint is InService again once converged or when a variant crash-loops
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelhost.controller.scaling import CRASH_LOOP_FAILURES, decide_scale
from modelhost.resources.endpoint import Endpoint
from modelhost.resources.status import SERVES, EndpointStatus


@dataclass(frozen=True, slots=True)
class ExitedInstance:
    group_id: str  # the SageMaker instance
    instance_id: str  # the worker (model copy) that exited
    exit_code: int


@dataclass(frozen=True, slots=True)
class VariantView:
    """One variant's fleet as observed."""

    instances: tuple[str, ...] = ()  # serving instance (group) ids, oldest first
    starting: int = 0  # instances being started and health-checked
    failures: int = 0  # consecutive instance failures
    retry_after: float = 0.0  # no replacement starts before this (monotonic)
    exited: tuple[ExitedInstance, ...] = ()  # serving instances one of whose workers has exited


@dataclass(frozen=True, slots=True)
class FleetView:
    """An endpoint's fleet as observed; `live` is False when nothing runs for it (never deployed, or a restart)."""

    live: bool = False
    operation: str | None = None  # the operation under way: deploy | update | scale | drain | delete
    retry_after: float = 0.0  # after a failed operation, nothing is tried before this (monotonic)
    variants: Mapping[str, VariantView] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Deploy:
    """Bring up the endpoint's current configuration (Creating, or again after a restart)."""


@dataclass(frozen=True, slots=True)
class Update:
    """Bring up the pending configuration beside the running one, move traffic, drain the old one."""


@dataclass(frozen=True, slots=True)
class Delete:
    """Stop everything the endpoint runs and delete its record."""


@dataclass(frozen=True, slots=True)
class Reap:
    """An instance's worker exited: the whole instance leaves the route; the next plan replaces it."""

    variant: str
    instance: ExitedInstance


@dataclass(frozen=True, slots=True)
class ScaleUp:
    variant: str
    count: int


@dataclass(frozen=True, slots=True)
class ScaleDown:
    variant: str
    group_ids: tuple[str, ...]  # newest first


@dataclass(frozen=True, slots=True)
class Publish:
    """Write current counts and weights; with `in_service`, the endpoint (back) to InService."""

    in_service: bool = False


Action = Deploy | Update | Delete | Reap | ScaleUp | ScaleDown | Publish


def plan_endpoint(endpoint: Endpoint, fleet: FleetView, now: float) -> list[Action]:
    if endpoint.status == EndpointStatus.DELETING:
        if fleet.operation == "delete" or (fleet.operation is None and now < fleet.retry_after):
            return []
        return [Delete()]  # cancels whatever else runs
    if fleet.operation is not None or now < fleet.retry_after or endpoint.status == EndpointStatus.FAILED:
        return []
    if endpoint.status == EndpointStatus.CREATING and fleet.live:
        return [Publish(in_service=True)]  # the fleet is up; only writing that down failed
    if endpoint.status == EndpointStatus.CREATING or (endpoint.status in SERVES and not fleet.live):
        return [Deploy()]
    if endpoint.status == EndpointStatus.UPDATING and endpoint.pending is not None:
        return [Update()]
    if endpoint.status == EndpointStatus.ROLLING_BACK:
        return [Publish(in_service=True)]
    return _converge(endpoint, fleet, now)


def _converge(endpoint: Endpoint, fleet: FleetView, now: float) -> list[Action]:
    """Reap every variant's dead instances, then the first scale change a variant needs (one operation at a
    time); a variant waiting for its backoff does not hold up the others."""
    views = [(s, fleet.variants[s.name]) for s in endpoint.states if s.name in fleet.variants]
    actions: list[Action] = [Reap(s.name, e) for s, view in views for e in view.exited]
    settled = True
    for state, view in views:
        gone = {e.group_id for e in view.exited}
        serving = [g for g in view.instances if g not in gone]
        decision = decide_scale(state.desired_count, serving, view.starting)
        if decision.stop:
            return [*actions, ScaleDown(state.name, decision.stop)]
        if decision.start and not gone and now >= view.retry_after:
            return [*actions, ScaleUp(state.name, decision.start)]
        if decision.start or gone or view.starting:
            settled = False  # replacements wait for their backoff (counted after the reap)
    # A capacity update is done when every variant runs what it asks for, or when a variant cannot start
    # instances (crash loop): the endpoint is back InService, the variant's status says why, and the loop
    # keeps trying with backoff.
    crash_looping = any(view.failures >= CRASH_LOOP_FAILURES for _, view in views)
    in_service = endpoint.status == EndpointStatus.UPDATING and (settled or crash_looping)
    return [*actions, Publish(in_service=in_service)]


def orphaned_fleets(live: set[str], recorded: set[str], unreadable: set[str]) -> set[str]:
    """Fleets whose endpoint record is gone; a fleet whose record cannot be read keeps serving."""
    return live - recorded - unreadable
