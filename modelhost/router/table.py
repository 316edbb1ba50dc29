"""Endpoint → variants → ready instances, written by the controller and read by the router.

Choosing is pure: a variant by weight (or the caller's TargetVariant), then the instance with the fewest
requests in flight. The table holds no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class InstanceRoute:
    instance_id: str
    url: str  # e.g. http://127.0.0.1:41234
    in_flight: int = 0  # requests the router has sent and not yet seen answered


@dataclass(slots=True)
class VariantRoute:
    name: str
    weight: float
    instances: list[InstanceRoute] = field(default_factory=list)


@dataclass(slots=True)
class EndpointRoute:
    name: str
    variants: list[VariantRoute]
    log_group: str  # shown in ModelError messages, as SageMaker points at CloudWatch
    cache_mode: str = "off"  # result cache: off | deterministic | all (the model's MODELHOST_RESULT_CACHE)
    cache_ttl_s: float = 300.0
    generation: int = 0  # set by the table: changes whenever the endpoint's route is replaced


class NoVariant(Exception):
    """The TargetVariant names no variant of the endpoint."""


class RoutingTable:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._endpoints: dict[str, EndpointRoute] = {}
        self._rng = rng or random.Random()
        self._generations = 0

    def set(self, route: EndpointRoute) -> None:
        """Install (or replace) an endpoint's route; a new generation invalidates its cached results."""
        self._generations += 1
        route.generation = self._generations
        self._endpoints[route.name.lower()] = route

    def remove(self, endpoint_name: str) -> None:
        self._endpoints.pop(endpoint_name.lower(), None)

    def get(self, endpoint_name: str) -> EndpointRoute | None:
        return self._endpoints.get(endpoint_name.lower())

    def drop_instance(self, endpoint_name: str, instance_id: str) -> None:
        route = self.get(endpoint_name)
        if route is None:
            return
        for variant in route.variants:
            variant.instances = [i for i in variant.instances if i.instance_id != instance_id]

    def choose_variant(self, route: EndpointRoute, target: str | None) -> VariantRoute:
        """The caller's TargetVariant, else a variant drawn by weight among those with instances."""
        if target:
            for variant in route.variants:
                if variant.name == target:
                    return variant
            raise NoVariant(target)
        live = [v for v in route.variants if v.instances]
        candidates = live or route.variants
        weights = [max(v.weight, 0.0) for v in candidates]
        if sum(weights) <= 0:
            return candidates[0]
        return self._rng.choices(candidates, weights=weights, k=1)[0]

    def choose_instance(self, variant: VariantRoute, exclude: set[str] | None = None) -> InstanceRoute | None:
        """The instance with the fewest requests in flight; ties are broken at random to spread load."""
        candidates = [i for i in variant.instances if not exclude or i.instance_id not in exclude]
        if not candidates:
            return None
        fewest = min(i.in_flight for i in candidates)
        return self._rng.choice([i for i in candidates if i.in_flight == fewest])
