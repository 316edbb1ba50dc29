"""The alarm loop's I/O side: on each tick, every alarm evaluated over the metric store (alarm_eval decides),
its state changes written with their history, and the current states offered to the scaling loop.

Blocking (SQLite); the server calls `evaluate` from its 10 s monitoring tick, off the event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass

from modelhost.errors import ApiError
from modelhost.monitoring import alarm_eval
from modelhost.monitoring.alarm_series import period_values
from modelhost.monitoring.alarm_store import SqliteAlarmStore
from modelhost.monitoring.alarms import (
    SCALING_POLICY_PREFIX,
    AlarmStatus,
    Comparison,
    HistoryItem,
    MetricAlarm,
    StateValue,
)
from modelhost.monitoring.metric_store import SqliteMetricStore

log = logging.getLogger(__name__)

DATA_DELAY_S = 10.0  # a period's data is written up to one monitoring tick after it ends


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """A state change one evaluation made."""

    name: str
    arn: str
    old_state: StateValue
    new_state: StateValue
    reason: str  # the new StateReason
    timestamp_s: float  # epoch seconds of the evaluation
    actions: tuple[str, ...]  # the actions of the new state (empty when the alarm's actions are disabled)


@dataclass(frozen=True, slots=True)
class AlarmState:
    """An alarm as the scaling loop reads it."""

    name: str
    arn: str
    state: StateValue
    actions_for_state: tuple[str, ...]  # the ARNs configured for the current state (whether enabled or not)
    last_value: float | None  # the newest datapoint the state was decided on (None: no data)
    threshold: float
    comparison: Comparison
    actions_enabled: bool
    values: tuple[float, ...] = ()  # every datapoint the state was decided on, oldest first
    period_s: int = 60
    alarm_actions: tuple[str, ...] = ()  # the AlarmActions ARNs, whatever the state

    @property
    def breach(self) -> float | None:
        """last_value − threshold: what a step policy's StepAdjustment bounds are compared with."""
        return None if self.last_value is None else self.last_value - self.threshold

    @property
    def scaling_policy_arns(self) -> tuple[str, ...]:
        """The Auto Scaling policies the current state triggers: none while actions are disabled."""
        if not self.actions_enabled:
            return ()
        return tuple(arn for arn in self.actions_for_state if arn.startswith(SCALING_POLICY_PREFIX))


def state_history(name: str, old: AlarmStatus, new: AlarmStatus) -> HistoryItem:
    """The StateUpdate item CloudWatch records for a change (HistoryData as CloudWatch writes it)."""
    new_state: dict[str, object] = {"stateValue": new.value, "stateReason": new.reason}
    if new.reason_data:
        with contextlib.suppress(ValueError):
            new_state["stateReasonData"] = json.loads(new.reason_data)
    data = {"version": "1.0", "oldState": {"stateValue": old.value, "stateReason": old.reason}, "newState": new_state}
    summary = f"Alarm updated from {old.value} to {new.value}"
    return HistoryItem(name, new.updated_s, "StateUpdate", summary, json.dumps(data, separators=(",", ":")))


class AlarmEvaluator:
    """Evaluates every alarm over the store on each tick and keeps the latest evaluation of each in memory."""

    def __init__(self, alarms: SqliteAlarmStore, metrics: SqliteMetricStore, delay_s: float = DATA_DELAY_S) -> None:
        self._alarms = alarms
        self._metrics = metrics
        self._delay_s = delay_s
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, alarm_eval.Evaluation]] = {}  # name -> (config time, evaluation)

    def evaluate(self, now_s: float) -> list[AlarmTransition]:
        """Evaluate every alarm at `now_s`; write and return the state changes."""
        transitions = []
        latest: dict[str, tuple[float, alarm_eval.Evaluation]] = {}
        for alarm in self._alarms.all():
            try:
                evaluation = self._evaluate_one(alarm, now_s)
            except ApiError as exc:  # a metric math alarm whose queries the store can no longer answer
                log.warning("alarm %s cannot be evaluated: %s", alarm.config.name, exc.message)
                continue
            latest[alarm.config.name] = (alarm.config.updated_s, evaluation)
            transition = self._apply(alarm, evaluation, now_s)
            if transition is not None:
                transitions.append(transition)
        with self._lock:
            self._latest = latest
        return transitions

    def _evaluate_one(self, alarm: MetricAlarm, now_s: float) -> alarm_eval.Evaluation:
        config = alarm.config
        rule = alarm_eval.AlarmRule(
            config.period_s, config.evaluation_periods, config.datapoints_to_alarm, config.threshold,
            config.comparison, config.treat_missing, config.statistic or "",
        )  # fmt: skip
        newest = alarm_eval.newest_complete_start(now_s, config.period_s, self._delay_s)
        start = newest - (config.evaluation_periods + alarm_eval.EXTRA_PERIODS - 1) * config.period_s
        values = period_values(self._metrics, config, start, newest + config.period_s, now_s)
        return alarm_eval.evaluate(rule, values, newest, alarm.status.value, now_s)

    def _apply(self, alarm: MetricAlarm, evaluation: alarm_eval.Evaluation, now_s: float) -> AlarmTransition | None:
        old = alarm.status
        if evaluation.state == old.value:
            return None
        new = AlarmStatus(evaluation.state, evaluation.reason, evaluation.reason_data, now_s, now_s,
                          evaluation.values)  # fmt: skip
        history = state_history(alarm.config.name, old, new)
        if not self._alarms.set_status(alarm.config.name, new, history, config_updated_s=alarm.config.updated_s):
            return None  # deleted or reconfigured since it was read: the next tick evaluates the new one
        config = alarm.config
        actions = config.actions_for(new.value) if config.actions_enabled else ()
        log.info("alarm %s: %s -> %s: %s", config.name, old.value, new.value, new.reason)
        return AlarmTransition(config.name, config.arn, old.value, new.value, new.reason, now_s, actions)

    def alarm_states(self) -> list[AlarmState]:
        """Every alarm's current state (as stored: SetAlarmState shows until the next evaluation), with the
        datapoints of its latest evaluation (else those its state was last decided on)."""
        with self._lock:
            latest = dict(self._latest)
        states = []
        for alarm in self._alarms.all():
            config, status = alarm.config, alarm.status
            values = status.recent_values
            known = latest.get(config.name)
            if known is not None and known[0] == config.updated_s and known[1].state == status.value:
                values = known[1].values
            states.append(AlarmState(
                config.name, config.arn, status.value, config.actions_for(status.value),
                values[-1] if values else None, config.threshold, config.comparison, config.actions_enabled,
                values, config.period_s, config.alarm_actions,
            ))  # fmt: skip
        return states
