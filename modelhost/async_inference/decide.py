"""What the dispatcher does next for one endpoint's queue, decided without I/O.

Oldest first, up to `MaxConcurrentInvocationsPerInstance × max(1, serving instances)` in flight (at zero
instances one instance's worth is sent, so the router's admission starts the variant from zero and holds them);
a request whose RequestTTLSeconds ran out before it started fails; an endpoint that is gone, or no longer
asynchronous, or failed fails its whole queue (`refusal_of`). After the router said "not now" (no instance,
throttled) the endpoint gets nothing new until `not_before`; while it is Creating nothing starts (its
requests wait, only their TTL runs). At most MAX_ENDINGS_PER_PASS requests are failed or expired per pass
(they count as in flight), so a deleted endpoint with a long queue does not start a thread per request.
A request that had started before a restart does not expire: it was in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_ENDINGS_PER_PASS = 64


@dataclass(frozen=True, slots=True)
class Waiting:
    key: str
    received: float
    expires: float
    started_before: bool = False  # it was running when the server stopped


@dataclass(frozen=True, slots=True)
class EndpointView:
    name: str
    refusal: str | None  # why none of its requests can run any more (deleted, failed, no longer asynchronous)
    instances: int  # serving instances in its route now
    per_instance: int  # MaxConcurrentInvocationsPerInstance
    running: int  # requests of it in flight now
    not_before: float = 0.0  # back off until then (the router could not take a request)
    holding: bool = False  # the endpoint is still being created: its requests wait


@dataclass(frozen=True, slots=True)
class Plan:
    start: tuple[str, ...] = ()
    expire: tuple[str, ...] = ()
    fail: tuple[str, ...] = ()
    fail_reason: str = ""


def refusal_of(name: str, status: str | None, asynchronous: bool) -> str | None:
    """Why an endpoint's queued requests can never run (None: they can). `status` None: no such endpoint."""
    if status is None or status == "Deleting":
        return f"Endpoint {name} was deleted before the request ran."
    if status == "Failed":
        return f"Endpoint {name} failed (its status is Failed) before the request ran."
    if not asynchronous:
        return f"Endpoint {name} is no longer configured for asynchronous inference (AsyncInferenceConfig)."
    return None


def capacity(view: EndpointView) -> int:
    """How many of its requests may be in flight at once."""
    return view.per_instance * max(1, view.instances)


def plan(view: EndpointView, waiting: Sequence[Waiting], now: float) -> Plan:
    """`waiting` oldest first. Expired ones fail whether or not there is room; the rest start while there is."""
    if not waiting:
        return Plan()
    ending_room = max(0, MAX_ENDINGS_PER_PASS - view.running)
    if view.refusal is not None:
        return Plan(fail=tuple(w.key for w in waiting[:ending_room]), fail_reason=view.refusal)
    out_of_time = [w for w in waiting if w.expires <= now and not w.started_before]
    expired = tuple(w.key for w in out_of_time[:ending_room])
    room = 0 if view.holding or now < view.not_before else max(0, capacity(view) - view.running)
    live = [w for w in waiting if w.expires > now or w.started_before]
    return Plan(start=tuple(w.key for w in live[:room]), expire=expired)


@dataclass(frozen=True, slots=True)
class Backlog:
    """One asynchronous endpoint's queue, for the CloudWatch metrics."""

    endpoint: str
    size: int  # waiting + in flight (SageMaker: "being processed or yet to be processed")
    oldest_received: float | None  # of the backlog
    instances: int


def backlog_of(endpoint: str, received: Sequence[float], instances: int) -> Backlog:
    return Backlog(endpoint, len(received), min(received) if received else None, instances)
