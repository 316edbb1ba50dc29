"""The alarm decision: a metric alarm's new state from its per-period values, by CloudWatch's M-out-of-N rule
with TreatMissingData, and the StateReason / StateReasonData CloudWatch would write (pure).

The evaluation range is the alarm's N periods and EXTRA_PERIODS older ones (CloudWatch also looks back past N
periods). With at least N real data points in the range, the newest N decide and missing data plays no part.
With fewer, every real point counts and the missing ones are filled as TreatMissingData says:

    breaching / notBreaching  N - k filled points breach / do not breach, then M out of N
    missing                   no points: INSUFFICIENT_DATA; else the k real points alone, M capped at k
    ignore                    no points: the state stays; ALARM with M breaching, OK when ALARM can no
                              longer be reached (more than N - M points within the threshold), else it stays

This reproduces the table of CloudWatch's "Configuring how CloudWatch alarms treat missing data" (3 out of 3;
tests/unit/monitoring/test_alarm_eval.py holds it row by row).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from modelhost.monitoring.alarms import Comparison, StateValue, TreatMissing

EXTRA_PERIODS = 2

_WORDS: dict[Comparison, str] = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}


@dataclass(frozen=True, slots=True)
class AlarmRule:
    """The numbers an alarm is decided on."""

    period_s: int
    evaluation_periods: int  # N
    datapoints_to_alarm: int  # M (1 <= M <= N)
    threshold: float
    comparison: Comparison
    treat_missing: TreatMissing = "missing"
    statistic: str = ""  # for StateReasonData ("Average"); "" for metric math


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation decided."""

    state: StateValue
    reason: str  # StateReason, CloudWatch's words
    reason_data: str  # StateReasonData (JSON)
    values: tuple[float, ...]  # the real datapoints evaluated, oldest first
    last_value: float | None  # the newest real datapoint evaluated (None: none)


def breaches(value: float, threshold: float, comparison: Comparison) -> bool:
    if comparison == "GreaterThanOrEqualToThreshold":
        return value >= threshold
    if comparison == "GreaterThanThreshold":
        return value > threshold
    if comparison == "LessThanThreshold":
        return value < threshold
    return value <= threshold


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _stamp(timestamp_s: int) -> str:
    return datetime.fromtimestamp(timestamp_s, UTC).strftime("%d/%m/%y %H:%M:%S")


def _iso(timestamp_s: float) -> str:
    moment = datetime.fromtimestamp(timestamp_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _listed(points: list[tuple[int, float]]) -> str:
    """Datapoints as CloudWatch lists them: newest first, `5.0 (12/01/26 10:00:00)`."""
    return "[" + ", ".join(f"{value!r} ({_stamp(ts)})" for ts, value in sorted(points, reverse=True)) + "]"


def evaluate(
    rule: AlarmRule,
    values: Mapping[int, float],
    newest_start_s: int,
    previous: StateValue,
    now_s: float,
) -> Evaluation:
    """The alarm's state after this evaluation.

    `values`: the value of each period that has data, by period start (others are missing); `newest_start_s`:
    the start of the newest complete period; `previous`: the state before (kept by `ignore`, named in reasons).
    """
    n = rule.evaluation_periods
    starts = [newest_start_s - i * rule.period_s for i in range(n + EXTRA_PERIODS)]  # newest first
    real = [(ts, values[ts]) for ts in starts if ts in values][:n]
    breaching: list[tuple[int, float]] = []
    within: list[tuple[int, float]] = []
    for point in real:
        (breaching if breaches(point[1], rule.threshold, rule.comparison) else within).append(point)
    fills = n - len(real)
    state = _decide(rule, len(real), len(breaching), len(within), fills, previous)
    ordered = tuple(v for _, v in reversed(real))
    data = _reason_data(rule, real, newest_start_s, now_s)
    last = real[0][1] if real else None
    reason = _reason(rule, state, previous, breaching, within, fills)
    return Evaluation(state, reason, data, ordered, last)


def _decide(rule: AlarmRule, k: int, b: int, w: int, fills: int, previous: StateValue) -> StateValue:
    n, m = rule.evaluation_periods, rule.datapoints_to_alarm
    if fills <= 0:
        return "ALARM" if b >= m else "OK"
    treat = rule.treat_missing
    if treat == "breaching":
        return "ALARM" if b + fills >= m else "OK"
    if treat == "notBreaching":
        return "ALARM" if b >= m else "OK"
    if k == 0:
        return "INSUFFICIENT_DATA" if treat == "missing" else previous
    if treat == "missing":
        return "ALARM" if b >= min(m, k) else "OK"
    if b >= m:
        return "ALARM"
    return "OK" if w > n - m else previous


def _reason(
    rule: AlarmRule,
    state: StateValue,
    previous: StateValue,
    breaching: list[tuple[int, float]],
    within: list[tuple[int, float]],
    fills: int,
) -> str:
    n, m = rule.evaluation_periods, rule.datapoints_to_alarm
    words = _WORDS[rule.comparison]
    if state == "INSUFFICIENT_DATA":
        return f"Insufficient Data: {_plural(n, 'datapoint')} {'was' if n == 1 else 'were'} unknown."
    if not breaching and not within:
        treated = "Breaching" if rule.treat_missing == "breaching" else "NonBreaching"
        if rule.treat_missing in ("missing", "ignore"):
            return f"No datapoints were received for {_plural(n, 'period')}; the state stays {previous}."
        return (f"Threshold Crossed: no datapoints were received for {_plural(n, 'period')} and "
                f"{_plural(n, 'missing datapoint')} {'was' if n == 1 else 'were'} treated as [{treated}].")  # fmt: skip
    shown = breaching if state == "ALARM" else within
    if state == "ALARM":
        verb, needed = words, m
    else:
        verb, needed = f"not {words}", n - m + 1
    counted = len(shown)
    if fills > 0 and rule.treat_missing in ("breaching", "notBreaching"):
        treated = "Breaching" if rule.treat_missing == "breaching" else "NonBreaching"
        lead = f"{_plural(counted, 'datapoint')} {_listed(shown)} {'was' if counted == 1 else 'were'}"
        tail = f" and {_plural(fills, 'missing datapoint')} {'was' if fills == 1 else 'were'} treated as [{treated}]"
    else:
        total = len(breaching) + len(within)
        lead = f"{counted} out of the last {total} datapoints {_listed(shown)} {'was' if counted == 1 else 'were'}"
        tail = ""
    transition = f"{previous} -> {state}"
    return (f"Threshold Crossed: {lead} {verb} the threshold ({rule.threshold!r}){tail} "
            f"(minimum {_plural(needed, 'datapoint')} for {transition} transition).")  # fmt: skip


def _reason_data(rule: AlarmRule, real: list[tuple[int, float]], newest_start_s: int, now_s: float) -> str:
    oldest = newest_start_s - (rule.evaluation_periods - 1) * rule.period_s
    if real:
        oldest = min(oldest, real[-1][0])
    data: dict[str, object] = {"version": "1.0", "queryDate": _iso(now_s), "startDate": _iso(oldest)}
    if rule.statistic:
        data["statistic"] = rule.statistic
    data.update({
        "period": rule.period_s,
        "recentDatapoints": [v for _, v in reversed(real)],
        "threshold": rule.threshold,
        "evaluatedDatapoints": [{"timestamp": _iso(ts), "value": v} for ts, v in real],
    })  # fmt: skip
    return json.dumps(data, separators=(",", ":"))


def newest_complete_start(now_s: float, period_s: int, delay_s: float) -> int:
    """The start of the newest period that ended at least `delay_s` before `now_s` (data for a period is
    written up to one monitoring tick after it ends)."""
    return int((now_s - delay_s) // period_s) * period_s - period_s
