"""The scaling loop: every tick, each registered target's policies are evaluated by the pure decider over the
metric store's 10-second data, and a changed desired count is applied as UpdateEndpointWeightsAndCapacities
would apply it (the controller's own scaling: a scale-in drains, no request fails), with an activity in
DescribeScalingActivities saying what was done and why.

Per target, in order: the capacity bounds (a desired count outside [MinCapacity, MaxCapacity] is brought
inside), then the idle rule (scale to zero, or to MinCapacity, after MODELHOST_SCALE_TO_ZERO_IDLE_S without a
request), then every policy — target tracking over its metric, step scaling when one of its alarms is in
ALARM — merged by `combine` (the largest scale-out wins; a scale-in needs every policy to agree).
SuspendedState pauses scale-in and/or scale-out. Scheduled actions whose time came since the last tick set
the target's MinCapacity/MaxCapacity (the bounds rule then moves the desired count at once), unless
scheduled scaling is suspended. Waking from zero on a request is not here: the router's admission asks
controller/cold_start.py at once, without waiting for a tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from modelhost.autoscaling.decider import (
    AlarmBreach,
    Capacity,
    Decision,
    History,
    MetricSeries,
    Traffic,
    combine,
    decide_scale_to_zero,
    decide_step_scaling,
    decide_target_tracking,
)
from modelhost.autoscaling.mapping import metric_read, step_policy, tracking_policy, variant_dimensions
from modelhost.autoscaling.policies import ScalingSettings
from modelhost.autoscaling.records import ActivityStatus, PolicyType, ScalableTarget, ScalingPolicy, ScheduledAction
from modelhost.autoscaling.scaling_store import record_activity, ref_of, scaling_state
from modelhost.autoscaling.schedules import ScheduleError, next_run, parse_schedule, time_zone
from modelhost.clock import Clock
from modelhost.concurrency import run_blocking
from modelhost.monitoring.alarm_evaluator import AlarmState
from modelhost.monitoring.datapoints import MetricIdentity
from modelhost.monitoring.invocations import SAGEMAKER_NAMESPACE
from modelhost.monitoring.metric_store import SqliteMetricStore
from modelhost.resources.endpoint import Endpoint
from modelhost.resources.status import EndpointStatus
from modelhost.store.records import Records

log = logging.getLogger(__name__)

PERIOD_S = 10


@dataclass(frozen=True, slots=True)
class Applied:
    endpoint: str
    variant: str
    desired: int
    cause: str


class ScalingLoop:
    def __init__(
        self,
        records: Records,
        store: SqliteMetricStore,
        settings: ScalingSettings,
        clock: Clock,
        wake: Callable[[], None],
        flushed_through: Callable[[], float],
        alarms: Callable[[], Sequence[AlarmState]] = lambda: (),
        interval_s: float = 10.0,
    ) -> None:
        self._records = records
        self._store = store
        self._settings = settings
        self._clock = clock
        self._wake = wake
        self._flushed_through = flushed_through  # end of the newest 10 s period written to the store
        self._alarms = alarms
        self._interval_s = interval_s
        self._history: dict[str, History] = {}
        self._first_seen: dict[str, float] = {}
        self._last_tick: float | None = None  # scheduled actions due after it and by now run at this tick

    async def run(self) -> None:
        """Ticks on a worker thread (the store blocks); the controller is woken on the event loop's thread, since
        its wake-up event is not thread-safe."""
        loop = asyncio.get_running_loop()
        wake = self._wake

        def wake_on_loop() -> None:
            loop.call_soon_threadsafe(wake)

        self._wake = wake_on_loop
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await run_blocking(self.tick, timeout_s=60.0, name="scaling")
            except asyncio.CancelledError:
                raise
            except Exception:  # a tick that fails (store trouble) is retried at the next one
                log.exception("scaling tick failed")

    def tick(self) -> list[Applied]:
        now = self._clock.now()
        since, self._last_tick = self._last_tick if self._last_tick is not None else now, now
        applied = []
        alarms = list(self._alarms())
        for target, policies, actions in scaling_state(self._records):
            if not target.suspended.scheduled_scaling:
                target = self._run_schedules(target, actions, since, now)
            endpoint = self._records.endpoints.get(target.endpoint_name)
            if endpoint is None or endpoint.status != EndpointStatus.IN_SERVICE:
                continue
            state = endpoint.state(target.variant_name)
            if state is None:
                continue
            capacity = Capacity(state.desired_count, state.current_count, target.min_capacity, target.max_capacity)
            decision = self._decide(target, policies, capacity, alarms, now)
            changes = decision is not None and decision.desired not in (None, state.desired_count)
            if changes and decision is not None and self._apply(endpoint, target, decision, now):
                applied.append(Applied(endpoint.name, target.variant_name, decision.desired or 0, decision.cause))
        return applied

    # scheduled actions -----------------------------------------------------------------------
    def _run_schedules(self, target: ScalableTarget, actions: list[ScheduledAction], since: float, now: float
                       ) -> ScalableTarget:  # fmt: skip
        for action in actions:
            try:
                due = next_run(parse_schedule(action.schedule), since, zone=time_zone(action.timezone),
                               anchor=action.start if action.start is not None else action.created)  # fmt: skip
            except ScheduleError:
                continue
            if due is None or due > now or (action.start is not None and due < action.start):
                continue
            if action.end is not None and due > action.end:
                continue
            low = action.bounds.min_capacity if action.bounds.min_capacity is not None else target.min_capacity
            high = action.bounds.max_capacity if action.bounds.max_capacity is not None else target.max_capacity
            target = replace(target, min_capacity=low, max_capacity=max(low, high))
            self._records.scalable_targets.put(ref_of(target).key, target)
            record_activity(
                self._records, resource_id=target.resource_id,
                description=f"Setting min capacity to {target.min_capacity} and max capacity to {target.max_capacity}",
                cause=f"scheduled action name {action.name} was triggered", now=now, status=ActivityStatus.SUCCESSFUL,
            )  # fmt: skip
        return target

    # deciding --------------------------------------------------------------------------------
    def _decide(
        self, target: ScalableTarget, policies: list[ScalingPolicy], capacity: Capacity,
        alarms: list[AlarmState], now: float,
    ) -> Decision | None:  # fmt: skip
        if capacity.desired < capacity.min_capacity or capacity.desired > capacity.max_capacity:
            bounded = min(max(capacity.desired, capacity.min_capacity), capacity.max_capacity)
            return Decision(bounded, f"the desired count {capacity.desired} is outside the scalable target's bounds "
                                     f"[{capacity.min_capacity}, {capacity.max_capacity}]",
                            f"Setting desired instance count to {bounded}.")  # fmt: skip
        key = target.resource_id
        history = self._history.get(key, History())
        disable_in = any(p.target_tracking is not None and p.target_tracking.disable_scale_in for p in policies)
        idle = decide_scale_to_zero(self._settings, capacity, self._traffic(target, now), now, disable_in)
        if idle.desired is not None:
            return self._allowed(target, capacity, idle)
        decisions = []
        for policy in policies:
            if policy.policy_type is PolicyType.TARGET_TRACKING:
                tracked = tracking_policy(policy)
                series = self._series(policy, now)
                if tracked is not None and series is not None:
                    decisions.append(decide_target_tracking(tracked, self._settings, capacity, history, series, now))
            else:
                stepped = step_policy(policy)
                breach = _breach(policy, alarms)
                if stepped is not None and breach is not None:
                    decisions.append(decide_step_scaling(stepped, self._settings, capacity, history, breach, now))
        if not decisions:
            return None
        return self._allowed(target, capacity, combine(capacity.desired, decisions))

    @staticmethod
    def _allowed(target: ScalableTarget, capacity: Capacity, decision: Decision) -> Decision | None:
        if decision.desired is None:
            return None
        if decision.desired > capacity.desired and target.suspended.dynamic_scaling_out:
            return None
        if decision.desired < capacity.desired and target.suspended.dynamic_scaling_in:
            return None
        return decision

    def _traffic(self, target: ScalableTarget, now: float) -> Traffic:
        """When the variant last had a request (its Invocations series), or when this loop first saw it."""
        first = self._first_seen.setdefault(target.resource_id, now)
        lookback = max(self._settings.idle_s * 2, 600.0)
        metric = MetricIdentity(SAGEMAKER_NAMESPACE, "Invocations",
                                variant_dimensions(target.endpoint_name, target.variant_name))  # fmt: skip
        points = self._store.statistics(metric, now - lookback, now + PERIOD_S, PERIOD_S, now)
        busy = [p.timestamp_s + PERIOD_S for p in points if p.stats.sample_count > 0]
        last = max(busy) if busy else None
        through = self._flushed_through()
        if last is not None and last >= through - PERIOD_S:
            return Traffic(idle_since_s=None)  # a request in the newest flushed period: busy
        return Traffic(idle_since_s=max(last or first, first))

    def _series(self, policy: ScalingPolicy, now: float) -> MetricSeries | None:
        read = metric_read(policy)
        if read is None:
            return None
        lookback = PERIOD_S * max(self._settings.scale_in_points, self._settings.scale_out_points) * 2 + 60
        points = self._store.statistics(read.metric, now - lookback, now + PERIOD_S, PERIOD_S, now)
        samples = tuple((float(p.timestamp_s), p.stats.value(read.statistic)) for p in points)
        return MetricSeries(samples, self._flushed_through())

    # applying --------------------------------------------------------------------------------
    def _apply(self, endpoint: Endpoint, target: ScalableTarget, decision: Decision, now: float) -> bool:
        desired = decision.desired
        assert desired is not None
        before = endpoint.state(target.variant_name)
        previous = before.desired_count if before is not None else 0

        def change(current: Endpoint) -> Endpoint | None:
            if current.status != EndpointStatus.IN_SERVICE:
                return None
            return current.with_desired({target.variant_name: (None, desired)}, self._clock.now())

        after = self._records.endpoints.update(endpoint.name, change)
        after_state = after.state(target.variant_name) if after is not None else None
        if after_state is None or after_state.desired_count != desired:
            return False
        history = self._history.get(target.resource_id, History())
        if desired > previous:
            history = replace(history, last_scale_out_s=now, scaled_out_from=previous)
        else:
            history = replace(history, last_scale_in_s=now)
        self._history[target.resource_id] = history
        record_activity(
            self._records, resource_id=target.resource_id,
            description=decision.description or f"Setting desired instance count to {desired}.",
            cause=decision.cause, now=now, status=ActivityStatus.SUCCESSFUL,
        )  # fmt: skip
        log.info("scaling %s/%s from %d to %d: %s", endpoint.name, target.variant_name, previous, desired,
                 decision.cause)  # fmt: skip
        self._wake()
        return True


def _breach(policy: ScalingPolicy, alarms: list[AlarmState]) -> AlarmBreach | None:
    """The first alarm in ALARM (actions enabled) whose actions name this step policy, as the decider takes it."""
    for alarm in alarms:
        if alarm.state == "ALARM" and policy.arn in alarm.scaling_policy_arns:
            values = tuple(v for v in alarm.values if math.isfinite(v))
            if values:
                return AlarmBreach(alarm.name, alarm.threshold, values)
    return None
