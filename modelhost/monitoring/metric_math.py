"""GetMetricData's metric math, the simple part (pure): query ids, numbers, + - * / and parentheses between
series and scalars, and SUM / AVG / MIN / MAX.

As in CloudWatch, a function of one series is a scalar (over all its points) and a function of an array
`[a, b, ...]` is a series (per timestamp, over the members that have a point there). Arithmetic between two
series keeps the timestamps both have; division by zero leaves that point out. A series is a
{timestamp: value} dict. Anything else (METRICS(), FILL, Metrics Insights SQL) is refused with a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Series = dict[int, float]
Value = float | Series

MAX_NESTING = 32
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(.))")
_FUNCTIONS: dict[str, Callable[[list[float]], float]] = {
    "SUM": sum,
    "AVG": lambda values: sum(values) / len(values),
    "MIN": min,
    "MAX": max,
}


class ExpressionError(ValueError):
    """The expression cannot be parsed or evaluated; the message says where."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "number", "name" or the operator character
    text: str


def _tokens(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:  # only trailing whitespace is left
            break
        number, name, other = match.groups()
        if number is not None:
            tokens.append(_Token("number", number))
        elif name is not None:
            tokens.append(_Token("name", name))
        elif other is not None:
            if other not in "+-*/()[],":
                raise ExpressionError(f"Unexpected character '{other}' at position {match.start(3) + 1}.")
            tokens.append(_Token(other, other))
        position = match.end()
    return tokens


def referenced_ids(expression: str) -> set[str]:
    """The query ids an expression uses (names that are not functions)."""
    return {t.text for t in _tokens(expression) if t.kind == "name" and t.text.upper() not in _FUNCTIONS}


class _Evaluator:
    def __init__(self, tokens: list[_Token], values: Mapping[str, Value]) -> None:
        self._tokens = tokens
        self._values = values
        self._at = 0
        self._depth = 0

    def run(self) -> Value:
        if not self._tokens:
            raise ExpressionError("The expression is empty.")
        result = self._sum()
        if self._at != len(self._tokens):
            raise ExpressionError(f"Unexpected '{self._tokens[self._at].text}' after a complete expression.")
        return result

    def _peek(self) -> str | None:
        return self._tokens[self._at].kind if self._at < len(self._tokens) else None

    def _take(self, kind: str) -> _Token:
        if self._peek() != kind:
            found = self._tokens[self._at].text if self._at < len(self._tokens) else "the end"
            raise ExpressionError(f"Expected '{kind}' but found {found!r}.")
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _sum(self) -> Value:
        value = self._product()
        while self._peek() in ("+", "-"):
            operator = self._take(self._peek() or "").text
            value = combine(value, self._product(), operator)
        return value

    def _product(self) -> Value:
        value = self._unary()
        while self._peek() in ("*", "/"):
            operator = self._take(self._peek() or "").text
            value = combine(value, self._unary(), operator)
        return value

    def _unary(self) -> Value:
        if self._peek() == "-":
            self._take("-")
            return combine(-1.0, self._unary(), "*")
        return self._primary()

    def _nested(self) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise ExpressionError(f"The expression nests deeper than {MAX_NESTING} levels.")

    def _primary(self) -> Value:
        kind = self._peek()
        if kind == "number":
            return float(self._take("number").text)
        if kind == "(":
            self._take("(")
            self._nested()
            value = self._sum()
            self._depth -= 1
            self._take(")")
            return value
        if kind == "name":
            name = self._take("name").text
            if name.upper() in _FUNCTIONS and self._peek() == "(":
                return self._function(name.upper())
            if name not in self._values:
                raise ExpressionError(f"Unrecognized query id or function '{name}'.")
            return self._values[name]
        found = self._tokens[self._at].text if kind is not None else "the end"
        raise ExpressionError(f"Expected a number, a query id or a function but found {found!r}.")

    def _function(self, name: str) -> Value:
        self._take("(")
        self._nested()
        if self._peek() == "[":
            self._take("[")
            members = [self._sum()]
            while self._peek() == ",":
                self._take(",")
                members.append(self._sum())
            self._take("]")
            result: Value = across(members, _FUNCTIONS[name])
        else:
            result = over(self._sum(), _FUNCTIONS[name])
        self._depth -= 1
        self._take(")")
        return result


def combine(left: Value, right: Value, operator: str) -> Value:
    """`left operator right` for scalars and series (series: the timestamps both have)."""
    if isinstance(left, dict) and isinstance(right, dict):
        pairs = [(ts, left[ts], right[ts]) for ts in left if ts in right]
    elif isinstance(left, dict):
        pairs = [(ts, v, float(right)) for ts, v in left.items()]  # type: ignore[arg-type]
    elif isinstance(right, dict):
        pairs = [(ts, left, v) for ts, v in right.items()]
    else:
        answer = _apply(left, right, operator)
        if answer is None:
            raise ExpressionError("The expression divides by zero.")
        return answer
    result: Series = {}
    for ts, a, b in pairs:
        value = _apply(a, b, operator)
        if value is not None:
            result[ts] = value
    return result


def _apply(a: float, b: float, operator: str) -> float | None:
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    return None if b == 0 else a / b


def over(value: Value, function: Callable[[list[float]], float]) -> float:
    """A function of one series (or scalar): a scalar; an empty series has none."""
    values = list(value.values()) if isinstance(value, dict) else [value]
    if not values:
        raise ExpressionError("A function of a series with no data points has no value.")
    return function(values)


def across(members: list[Value], function: Callable[[list[float]], float]) -> Series:
    """A function of an array: per timestamp of any series member, over the members with a point there."""
    timestamps = sorted({ts for m in members if isinstance(m, dict) for ts in m})
    result: Series = {}
    for ts in timestamps:
        values = [m[ts] if isinstance(m, dict) else m for m in members if not isinstance(m, dict) or ts in m]
        result[ts] = function(values)
    return result


def evaluate(expression: str, values: Mapping[str, Value]) -> Value:
    """The value of `expression` with query ids bound to `values` (series or scalars)."""
    return _Evaluator(_tokens(expression), values).run()
