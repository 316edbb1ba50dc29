"""The routing table: endpoint → variants → ready instances, as immutable snapshots with one owner.

The controller builds an `EndpointRoute` from its own state and `install`s it whenever it changes; the
router only reads. When the router cannot reach an instance (nothing answered), it does not edit the
route: it calls `report_unreachable`, the table prefers the endpoint's other instances until the route is
installed again, and the controller drains the reports (`take_unreachable`), pings the instance and
either installs the route again (re-admitted) or replaces the instance.

Choosing is pure (`choose_variant`, `choose_instance`): a variant by weight (or the caller's
TargetVariant), then the instance with the fewest requests in flight, suspects last. No I/O here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InstanceRoute:
    instance_id: str
    url: str  # e.g. http://127.0.0.1:41234
    router_token: str = ""  # the worker's secret, sent in contracts.worker.ROUTER_TOKEN_HEADER


@dataclass(frozen=True, slots=True)
class VariantRoute:
    name: str
    weight: float
    instances: tuple[InstanceRoute, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    name: str
    variants: tuple[VariantRoute, ...]
    log_group: str  # shown in ModelError messages, as SageMaker points at CloudWatch
    cache_mode: str = "off"  # result cache: off | deterministic | all (the model's MODELHOST_RESULT_CACHE)
    cache_ttl_s: float = 300.0

    def variant(self, name: str) -> VariantRoute | None:
        return next((v for v in self.variants if v.name == name), None)

    def instance_ids(self) -> frozenset[str]:
        return frozenset(i.instance_id for v in self.variants for i in v.instances)


@dataclass(frozen=True, slots=True)
class InstalledRoute:
    """A route as the table holds it. `generation` (the result cache keys on it) changes when the endpoint gets
    a new fleet: a route that shares no instance with the one it replaces (a deploy, UpdateEndpoint's
    blue/green switch, delete and re-create). It stays while the same fleet grows, shrinks, changes
    weights or is installed again, as the same worker processes keep answering."""

    route: EndpointRoute
    generation: int


class NoVariant(Exception):
    """The TargetVariant names no variant of the endpoint."""


def choose_variant(route: EndpointRoute, target: str | None, rng: random.Random) -> VariantRoute:
    """The caller's TargetVariant, else a variant drawn by weight among those with instances."""
    if target:
        variant = route.variant(target)
        if variant is None:
            raise NoVariant(target)
        return variant
    live = [v for v in route.variants if v.instances]
    candidates = live or list(route.variants)
    weights = [max(v.weight, 0.0) for v in candidates]
    if sum(weights) <= 0:
        return candidates[0]
    return rng.choices(candidates, weights=weights, k=1)[0]


def choose_instance(
    instances: Sequence[InstanceRoute],
    in_flight: Mapping[str, int],
    rng: random.Random,
    *,
    limit: int | None = None,
    exclude: Collection[str] = (),
    suspects: Collection[str] = (),
) -> InstanceRoute | None:
    """The instance to send to: not in `exclude`, under `limit` requests in flight, a suspect only when no
    other qualifies, then the fewest in flight (ties broken at random to spread load). None when none qualifies."""
    candidates = [
        i
        for i in instances
        if i.instance_id not in exclude and (limit is None or in_flight.get(i.instance_id, 0) < limit)
    ]
    trusted = [i for i in candidates if i.instance_id not in suspects]
    pool = trusted or candidates
    if not pool:
        return None
    fewest = min(in_flight.get(i.instance_id, 0) for i in pool)
    return rng.choice([i for i in pool if in_flight.get(i.instance_id, 0) == fewest])


class RoutingTable:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._endpoints: dict[str, InstalledRoute] = {}  # lower-cased endpoint name -> its route
        self._suspects: dict[str, set[str]] = {}  # lower-cased endpoint name -> instance ids reported unreachable
        self._reports: set[tuple[str, str]] = set()  # (endpoint name, instance id) not yet taken by the controller
        self._rng = rng or random.Random()
        self._generations = 0
        self._listeners: list[Callable[[str], None]] = []  # told the endpoint's name on every install

    def on_install(self, listener: Callable[[str], None]) -> None:
        """`listener(endpoint name)` after every install (admission wakes the requests waiting for instances)."""
        self._listeners.append(listener)

    # the controller's side -------------------------------------------------------------------
    def install(self, route: EndpointRoute) -> InstalledRoute:
        """Install (or replace) an endpoint's route; this clears the suspicion on its instances. A new fleet
        gets a new generation (see InstalledRoute), which invalidates the endpoint's cached results."""
        key = route.name.lower()
        current = self._endpoints.get(key)
        self._suspects.pop(key, None)
        if current is not None and current.route == route:
            return current
        if current is not None and current.route.instance_ids() & route.instance_ids():
            generation = current.generation
        else:
            self._generations += 1
            generation = self._generations
        installed = InstalledRoute(route, generation)
        self._endpoints[key] = installed
        for listener in self._listeners:
            listener(route.name)
        return installed

    def remove(self, endpoint_name: str) -> None:
        key = endpoint_name.lower()
        self._endpoints.pop(key, None)
        self._suspects.pop(key, None)
        self._reports = {r for r in self._reports if r[0].lower() != key}

    def take_unreachable(self) -> list[tuple[str, str]]:
        """The (endpoint name, instance id) pairs reported since the last call; the suspicion stays until the
        endpoint's route is installed again."""
        reports, self._reports = sorted(self._reports), set()
        return reports

    def installed_routes(self) -> dict[str, EndpointRoute]:
        """Every installed route by lower-cased endpoint name (what the leader publishes to a shared store)."""
        return {key: installed.route for key, installed in self._endpoints.items()}

    # the router's side -----------------------------------------------------------------------
    def get(self, endpoint_name: str) -> InstalledRoute | None:
        return self._endpoints.get(endpoint_name.lower())

    def report_unreachable(self, endpoint_name: str, instance_id: str) -> None:
        """Nothing answered at `instance_id`: prefer the endpoint's other instances until the route is installed
        again, and tell the controller. A report about an instance the installed route no longer has is dropped."""
        installed = self.get(endpoint_name)
        if installed is None or instance_id not in installed.route.instance_ids():
            return
        self._suspects.setdefault(endpoint_name.lower(), set()).add(instance_id)
        self._reports.add((installed.route.name, instance_id))

    def suspects(self, endpoint_name: str) -> frozenset[str]:
        """Instances of the endpoint reported unreachable since its route was last installed."""
        return frozenset(self._suspects.get(endpoint_name.lower(), ()))

    def choose_variant(self, route: EndpointRoute, target: str | None) -> VariantRoute:
        return choose_variant(route, target, self._rng)
