"""Starting a variant from zero instances when a request arrives for it (scale to zero).

Admission asks `ColdStarts.request(endpoint, variant)` when the variant's route has no instance. A variant may
start from zero when its scaling allows zero instances (a scalable target with MinCapacity 0: scale to zero
is on) — a variant at zero for any other reason (`modelhost stop`, DesiredInstanceCount 0) is not woken by
traffic. The first such request sets the variant's desired count to 1 at once (no alarm, no evaluation
period: the same transition as UpdateEndpointWeightsAndCapacities) and wakes the control loop; the requests
wait in admission's queue until the instance is in the route. Later requests while it starts write nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from modelhost.clock import Clock
from modelhost.resources.endpoint import Endpoint
from modelhost.resources.status import EndpointStatus
from modelhost.store.errors import StoreUnavailable, UnreadableRecord
from modelhost.store.records import Records

log = logging.getLogger(__name__)

Activity = Callable[[str, str, int, str], None]  # (endpoint, variant, new desired count, cause)


class ColdStarts:
    def __init__(
        self,
        records: Records,
        allows_zero: Callable[[str, str], bool],
        wake: Callable[[], None],
        clock: Clock,
        activity: Activity | None = None,
    ) -> None:
        self._records = records
        self._allows_zero = allows_zero
        self._wake = wake
        self._clock = clock
        self._activity = activity

    def request(self, endpoint_name: str, variant_name: str) -> bool:
        """True when an instance of the variant is (now being) started, so the request should wait for it."""
        try:
            endpoint = self._records.endpoints.get(endpoint_name)
        except (UnreadableRecord, StoreUnavailable):
            return False
        if endpoint is None or not self._allows_zero(endpoint.name, variant_name):
            return False
        state = endpoint.state(variant_name)
        if state is None:
            return False
        if state.desired_count > 0:
            return True  # a start is under way (or the route is about to get its instance)
        started = False

        def start(current: Endpoint) -> Endpoint | None:
            nonlocal started
            now_state = current.state(variant_name)
            if current.status != EndpointStatus.IN_SERVICE or now_state is None or now_state.desired_count > 0:
                return None
            started = True
            return current.with_desired({variant_name: (None, 1)}, self._clock.now())

        try:
            after = self._records.endpoints.update(endpoint.name, start)
        except StoreUnavailable as exc:
            log.warning("cannot start %s/%s from zero: %s", endpoint.name, variant_name, exc)
            return False
        if started:
            log.info("a request for %s/%s arrived at zero instances: starting one", endpoint.name, variant_name)
            if self._activity is not None:
                self._activity(endpoint.name, variant_name, 1, "a request arrived while the variant had no instances")
            self._wake()
            return True
        state_after = after.state(variant_name) if after is not None else None
        return state_after is not None and state_after.desired_count > 0
