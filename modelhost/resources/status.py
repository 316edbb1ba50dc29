"""Endpoint statuses and the transitions between them (the only place they are decided)."""

from __future__ import annotations

from enum import StrEnum


class EndpointStatus(StrEnum):
    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    ROLLING_BACK = "RollingBack"
    FAILED = "Failed"
    DELETING = "Deleting"


S = EndpointStatus

# status -> the statuses it may move to
TRANSITIONS: dict[EndpointStatus, frozenset[EndpointStatus]] = {
    S.CREATING: frozenset({S.IN_SERVICE, S.FAILED, S.DELETING}),
    S.IN_SERVICE: frozenset({S.UPDATING, S.FAILED, S.DELETING}),  # Failed: it cannot come back after a restart
    S.UPDATING: frozenset({S.IN_SERVICE, S.ROLLING_BACK, S.FAILED, S.DELETING}),
    S.ROLLING_BACK: frozenset({S.IN_SERVICE, S.FAILED, S.DELETING}),
    S.FAILED: frozenset({S.DELETING}),
    S.DELETING: frozenset(),
}

# an operation is under way: DeleteEndpoint / UpdateEndpoint are refused (AWS's "in-progress endpoint")
IN_PROGRESS = frozenset({S.CREATING, S.UPDATING, S.ROLLING_BACK, S.DELETING})
# the endpoint holds (or is getting) instances: they count against the instance-type quotas
HOLDS_INSTANCES = frozenset({S.CREATING, S.UPDATING, S.ROLLING_BACK, S.IN_SERVICE})
# the endpoint has (or had, before a restart) instances that can serve traffic
SERVES = frozenset({S.IN_SERVICE, S.UPDATING, S.ROLLING_BACK})


class IllegalTransition(ValueError):
    """A status change the table does not allow (a bug in the caller, never a user error)."""


def check_transition(current: EndpointStatus, new: EndpointStatus) -> None:
    if new != current and new not in TRANSITIONS[current]:
        raise IllegalTransition(f"an endpoint cannot go from {current} to {new}")
