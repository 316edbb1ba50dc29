"""Endpoint, its variants' specs and states, a pending blue/green update, and the named transitions.

Every change of an endpoint is one of the methods below; each returns a new record and checks the status
table in `resources/status.py`. The API records intent with them, the controller reports what runs with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from modelhost.resources.async_inference import AsyncInferenceConfig
from modelhost.resources.endpoint_config import ProductionVariant
from modelhost.resources.model import Container, Model, Tag
from modelhost.resources.status import EndpointStatus, check_transition

FAILURE_REASON_MAX = 1024

# VariantStatus[].Status values shown while a variant's instances come up or change
VARIANT_CREATING = "Creating"
VARIANT_UPDATING = "Updating"


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One variant as deployed: the config's variant and the model it named, snapshotted when the endpoint was
    created or updated (AWS lets both be deleted while the endpoint runs)."""

    variant: ProductionVariant
    model: Model

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def instance_type(self) -> str:
        return self.variant.instance_type

    @property
    def container(self) -> Container:
        return self.model.container


@dataclass(frozen=True, slots=True)
class VariantState:
    """What DescribeEndpoint reports of one variant: desired and current count and weight, and a status line."""

    name: str
    desired_count: int
    desired_weight: float
    current_count: int = 0
    current_weight: float = 0.0
    status: str | None = None  # VariantStatus[0].Status; None: nothing under way
    status_message: str | None = None
    status_since: float = 0.0
    deployed_image: str | None = None  # DeployedImages[0]; set once the variant first runs
    image_resolved_at: float = 0.0

    def with_message(self, status: str, message: str, now: float) -> VariantState:
        since = self.status_since if self.status == status else now
        return replace(self, status=status, status_message=message, status_since=since)

    def cleared(self) -> VariantState:
        return replace(self, status=None, status_message=None)


def initial_state(variant: ProductionVariant, now: float, *, status: str = VARIANT_CREATING) -> VariantState:
    return VariantState(
        name=variant.name,
        desired_count=variant.initial_instance_count,
        desired_weight=variant.initial_weight,
        current_weight=variant.initial_weight,
        status=status,
        status_message="waiting to start",
        status_since=now,
    )


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """An UpdateEndpoint under way: the new configuration's fleet, brought up beside the old one."""

    config_name: str
    variants: tuple[VariantSpec, ...]
    states: tuple[VariantState, ...]
    started: float
    async_inference: AsyncInferenceConfig | None = None  # the new configuration's


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    arn: str
    config_name: str
    status: EndpointStatus
    created: float
    modified: float
    region: str
    variants: tuple[VariantSpec, ...]
    states: tuple[VariantState, ...]
    failure_reason: str | None = None
    pending: PendingUpdate | None = None
    tags: tuple[Tag, ...] = ()
    async_inference: AsyncInferenceConfig | None = None  # the config's AsyncInferenceConfig, snapshotted

    @property
    def key(self) -> str:
        """Names are unique case-insensitively; every map of endpoints is keyed by this."""
        return self.name.lower()

    def state(self, variant_name: str) -> VariantState | None:
        return next((s for s in self.states if s.name == variant_name), None)

    def environment(self) -> dict[str, str]:
        """The variants' model environments merged (endpoint-wide settings such as the result cache)."""
        merged: dict[str, str] = {}
        for spec in self.variants:
            merged.update(spec.container.environment)
        return merged

    # transitions -----------------------------------------------------------------------------------
    def _moved(self, status: EndpointStatus, now: float, **changes: object) -> Endpoint:
        check_transition(self.status, status)
        return replace(self, status=status, modified=now, **changes)  # type: ignore[arg-type]

    def begin_update(self, pending: PendingUpdate, now: float) -> Endpoint:
        return self._moved(EndpointStatus.UPDATING, now, pending=pending)

    def commit_update(self, now: float) -> Endpoint:
        """The new fleet serves: it becomes the endpoint's configuration."""
        if self.pending is None:
            raise ValueError("no update is pending")
        pending = self.pending
        return self._moved(
            EndpointStatus.IN_SERVICE,
            now,
            config_name=pending.config_name,
            variants=pending.variants,
            states=pending.states,
            pending=None,
            failure_reason=None,
            async_inference=pending.async_inference,
        )

    def roll_back(self, reason: str, now: float) -> Endpoint:
        """The new fleet failed: it is being stopped; the old one keeps serving."""
        states = tuple(s.cleared() for s in self.states)
        return self._moved(
            EndpointStatus.ROLLING_BACK, now, pending=None, failure_reason=_reason(reason), states=states
        )

    def back_in_service(self, now: float) -> Endpoint:
        """Creating, Updating (counts/weights) or RollingBack is over: the fleet serves as desired."""
        changes: dict[str, object] = {"states": tuple(s.cleared() for s in self.states)}
        if self.status != EndpointStatus.ROLLING_BACK:
            changes["failure_reason"] = None
        return self._moved(EndpointStatus.IN_SERVICE, now, **changes)

    def fail(self, reason: str, now: float) -> Endpoint:
        states = tuple(replace(s.cleared(), current_count=0) for s in self.states)
        return self._moved(EndpointStatus.FAILED, now, failure_reason=_reason(reason), states=states, pending=None)

    def mark_deleting(self, now: float) -> Endpoint:
        return self._moved(EndpointStatus.DELETING, now)

    def with_desired(self, changes: Mapping[str, tuple[float | None, int | None]], now: float) -> Endpoint:
        """UpdateEndpointWeightsAndCapacities: new desired weights and/or counts, by variant name."""
        states = []
        for state in self.states:
            change = changes.get(state.name)
            if change is not None:
                weight, count = change
                state = replace(
                    state,
                    desired_weight=state.desired_weight if weight is None else weight,
                    desired_count=state.desired_count if count is None else count,
                ).with_message(VARIANT_UPDATING, "applying", now)
            states.append(state)
        return self._moved(EndpointStatus.UPDATING, now, states=tuple(states))

    # reports from the controller (no status change) -------------------------------------------------
    def with_variant_message(self, variant_name: str, message: str, now: float, *, pending: bool = False) -> Endpoint:
        """A progress line on a variant (of the pending update's fleet with `pending`)."""
        if pending:
            if self.pending is None:
                return self
            states = _with_message(self.pending.states, variant_name, VARIANT_CREATING, message, now)
            return replace(self, pending=replace(self.pending, states=states))
        default = VARIANT_CREATING if self.status == EndpointStatus.CREATING else VARIANT_UPDATING
        current = self.state(variant_name)
        status = current.status if current is not None and current.status else default
        return replace(self, states=_with_message(self.states, variant_name, status, message, now))

    def with_observed(self, observed: Mapping[str, VariantObservation], now: float) -> Endpoint:
        """Current counts and weights as they run; a variant whose trouble is over loses its status line."""
        states = []
        for state in self.states:
            seen = observed.get(state.name)
            if seen is not None:
                state = replace(state, current_count=seen.instances, current_weight=seen.weight)
                if seen.image and state.deployed_image is None:
                    state = replace(state, deployed_image=seen.image, image_resolved_at=now)
                if seen.settled and state.status is not None and self.status == EndpointStatus.IN_SERVICE:
                    state = state.cleared()
            states.append(state)
        return replace(self, states=tuple(states))


@dataclass(frozen=True, slots=True)
class VariantObservation:
    """What the controller sees of one variant's fleet, for `Endpoint.with_observed`."""

    instances: int  # healthy SageMaker instances serving
    weight: float
    image: str = ""
    settled: bool = False  # nothing starting and no recent failures: a stale status line can go


def _with_message(
    states: tuple[VariantState, ...], variant_name: str, status: str, message: str, now: float
) -> tuple[VariantState, ...]:
    return tuple(s.with_message(status, message, now) if s.name == variant_name else s for s in states)


def _reason(reason: str) -> str:
    return reason[:FAILURE_REASON_MAX]
