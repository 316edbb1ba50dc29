"""Metric math: arithmetic between series and scalars, SUM/AVG/MIN/MAX of a series and of an array."""

from __future__ import annotations

import pytest

from modelhost.monitoring.metric_math import ExpressionError, evaluate, referenced_ids

A = {0: 1.0, 60: 2.0, 120: 3.0}
B = {0: 10.0, 60: 0.0}
VALUES = {"a": A, "b": B}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a + b", {0: 11.0, 60: 2.0}),
        ("a * 2 - 1", {0: 1.0, 60: 3.0, 120: 5.0}),
        ("-a", {0: -1.0, 60: -2.0, 120: -3.0}),
        ("a / b", {0: 0.1}),  # 60: division by zero leaves the point out; 120: b has none
        ("(a + 1) * (2)", {0: 4.0, 60: 6.0, 120: 8.0}),
        ("SUM(a)", 6.0),
        ("AVG(a)", 2.0),
        ("MAX(a) - MIN(a)", 2.0),
        ("SUM([a, b])", {0: 11.0, 60: 2.0, 120: 3.0}),
        ("MAX([a, b, 5])", {0: 10.0, 60: 5.0, 120: 5.0}),
        ("a / AVG(a)", {0: 0.5, 60: 1.0, 120: 1.5}),
        ("1.5e1 + .5", 15.5),
    ],
)
def test_evaluate(expression: str, expected: object) -> None:
    assert evaluate(expression, VALUES) == expected


@pytest.mark.parametrize(
    "expression",
    ["", "a +", "a $ b", "zz", "SUM(a", "1 / 0", "(" * 40 + "a" + ")" * 40, "METRICS()", "SUM({})".format("[]")],
)
def test_refused(expression: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression, VALUES)


def test_referenced_ids() -> None:
    assert referenced_ids("SUM([m1, m2]) / AVG(m1) * 100") == {"m1", "m2"}
