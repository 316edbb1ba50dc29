"""The pure alarm decision: M out of N, TreatMissingData (CloudWatch's documented table row by row), the
comparison operators and the StateReason / StateReasonData texts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from modelhost.monitoring.alarm_eval import AlarmRule, breaches, evaluate, newest_complete_start
from modelhost.monitoring.alarms import StateValue, TreatMissing

T0 = int(datetime(2026, 1, 12, 10, 0, tzinfo=UTC).timestamp())  # the newest complete period starts here
P = 60


def series(pattern: str, high: float = 5.0, low: float = 1.0) -> dict[int, float]:
    """'0 - X - X', oldest first (the last character is the newest period): X breaches, 0 does not, - missing."""
    marks = pattern.split()
    values = {}
    for i, mark in enumerate(reversed(marks)):
        if mark != "-":
            values[T0 - i * P] = high if mark == "X" else low
    return values


def rule(n: int = 3, m: int = 3, treat: TreatMissing = "missing", **kw: object) -> AlarmRule:
    return AlarmRule(P, n, m, 4.0, "GreaterThanOrEqualToThreshold", treat, "Average", **kw)  # type: ignore[arg-type]


# CloudWatch's table for an alarm of 3 out of 3 over a 5-period evaluation range.
DOC_TABLE = [
    ("0 - X - X", "OK", "OK", "OK", "OK"),
    ("- - - - 0", "OK", "OK", "OK", "OK"),
    ("- - - - -", "INSUFFICIENT_DATA", "RETAIN", "ALARM", "OK"),
    ("0 X X - X", "ALARM", "ALARM", "ALARM", "ALARM"),
    ("- - X - -", "ALARM", "RETAIN", "ALARM", "OK"),
]


@pytest.mark.parametrize("pattern,missing,ignore,breaching,not_breaching", DOC_TABLE)
@pytest.mark.parametrize("previous", ["OK", "ALARM", "INSUFFICIENT_DATA"])
def test_cloudwatch_missing_data_table(
    pattern: str, missing: str, ignore: str, breaching: str, not_breaching: str, previous: StateValue
) -> None:
    expected = {"missing": missing, "ignore": ignore, "breaching": breaching, "notBreaching": not_breaching}
    for treat, want in expected.items():
        got = evaluate(rule(treat=treat), series(pattern), T0, previous, T0 + 75).state  # type: ignore[arg-type]
        assert got == (previous if want == "RETAIN" else want), (pattern, treat)


@pytest.mark.parametrize(
    "pattern,n,m,state",
    [
        ("X X X", 3, 3, "ALARM"),
        ("X 0 X", 3, 3, "OK"),
        ("X 0 X", 3, 2, "ALARM"),
        ("0 0 X", 3, 2, "OK"),
        ("X X 0 0 0", 3, 2, "OK"),  # only the newest N count when N are there
        ("0 0 X X X", 3, 3, "ALARM"),
        ("X", 1, 1, "ALARM"),
        ("X 0", 1, 1, "OK"),
        ("X X X X X", 5, 4, "ALARM"),
        ("X X 0 X 0", 5, 4, "OK"),
    ],
)
def test_m_out_of_n(pattern: str, n: int, m: int, state: str) -> None:
    assert evaluate(rule(n, m), series(pattern), T0, "OK", T0 + 75).state == state


def test_extra_periods_stand_in_for_missing_recent_ones() -> None:
    # 3 real points in the 5-period range: they decide, TreatMissingData plays no part
    for treat in ("missing", "ignore", "breaching", "notBreaching"):
        assert evaluate(rule(treat=treat), series("X X - X -"), T0, "OK", T0 + 75).state == "ALARM"  # type: ignore[arg-type]
    # a point older than the range is not read
    assert evaluate(rule(1, 1), {T0 - 3 * P: 9.0}, T0, "OK", T0 + 75).state == "INSUFFICIENT_DATA"


@pytest.mark.parametrize(
    "comparison,value,breach",
    [
        ("GreaterThanOrEqualToThreshold", 4.0, True),
        ("GreaterThanOrEqualToThreshold", 3.9, False),
        ("GreaterThanThreshold", 4.0, False),
        ("GreaterThanThreshold", 4.1, True),
        ("LessThanThreshold", 4.0, False),
        ("LessThanThreshold", 3.9, True),
        ("LessThanOrEqualToThreshold", 4.0, True),
        ("LessThanOrEqualToThreshold", 4.1, False),
    ],
)
def test_comparisons(comparison: str, value: float, breach: bool) -> None:
    assert breaches(value, 4.0, comparison) is breach  # type: ignore[arg-type]


def test_alarm_reason_in_cloudwatch_words() -> None:
    values = {T0: 5.0, T0 - 60: 4.5, T0 - 120: 4.2}
    result = evaluate(rule(), values, T0, "OK", T0 + 75)
    assert result.state == "ALARM"
    assert result.reason == (
        "Threshold Crossed: 3 out of the last 3 datapoints [5.0 (12/01/26 10:00:00), 4.5 (12/01/26 09:59:00), "
        "4.2 (12/01/26 09:58:00)] were greater than or equal to the threshold (4.0) "
        "(minimum 3 datapoints for OK -> ALARM transition)."
    )
    assert result.values == (4.2, 4.5, 5.0)
    assert result.last_value == 5.0
    data = json.loads(result.reason_data)
    assert data["recentDatapoints"] == [4.2, 4.5, 5.0]
    assert data["threshold"] == 4.0 and data["period"] == 60 and data["statistic"] == "Average"
    assert data["startDate"] == "2026-01-12T09:58:00.000+0000"
    assert data["evaluatedDatapoints"][0] == {"timestamp": "2026-01-12T10:00:00.000+0000", "value": 5.0}


def test_ok_reason_counts_the_points_within_the_threshold() -> None:
    result = evaluate(rule(3, 2), {T0: 1.0, T0 - 60: 5.0, T0 - 120: 2.0}, T0, "ALARM", T0 + 75)
    assert result.state == "OK"
    assert result.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [1.0 (12/01/26 10:00:00), 2.0 (12/01/26 09:58:00)] were "
        "not greater than or equal to the threshold (4.0) (minimum 2 datapoints for ALARM -> OK transition)."
    )


def test_singular_words_and_filled_points() -> None:
    one = evaluate(rule(1, 1), {T0: 9.0}, T0, "INSUFFICIENT_DATA", T0 + 75)
    assert one.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [9.0 (12/01/26 10:00:00)] was greater than or equal to "
        "the threshold (4.0) (minimum 1 datapoint for INSUFFICIENT_DATA -> ALARM transition)."
    )
    filled = evaluate(rule(treat="breaching"), {T0: 9.0}, T0, "OK", T0 + 75)
    assert filled.state == "ALARM"
    assert filled.reason == (
        "Threshold Crossed: 1 datapoint [9.0 (12/01/26 10:00:00)] was greater than or equal to the threshold (4.0) "
        "and 2 missing datapoints were treated as [Breaching] (minimum 3 datapoints for OK -> ALARM transition)."
    )
    none = evaluate(rule(treat="breaching"), {}, T0, "OK", T0 + 75)
    assert none.reason == (
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as "
        "[Breaching]."
    )
    assert none.last_value is None and none.values == ()


def test_insufficient_data_reason() -> None:
    result = evaluate(rule(), {}, T0, "OK", T0 + 75)
    assert (result.state, result.reason) == ("INSUFFICIENT_DATA", "Insufficient Data: 3 datapoints were unknown.")


def test_newest_complete_period_waits_for_the_data_delay() -> None:
    assert newest_complete_start(T0 + 70, 60, 10) == T0
    assert newest_complete_start(T0 + 69, 60, 10) == T0 - 60
    assert newest_complete_start(T0 + 25, 10, 10) == T0
