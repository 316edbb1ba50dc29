"""Strict JSON for request bodies: bounded nesting, bounded numbers, finite floats, well-formed strings (pure).

`loads` parses like `json.loads` and then refuses, with `UnsafeJson` naming the member's path, what Python's
parser lets through but the rest of the server cannot safely hold: nesting deeper than `MAX_DEPTH`,
integers of more than `MAX_INT_DIGITS` digits, `NaN`/`Infinity`/`1e400` (not finite), and strings or keys
with lone UTF-16 surrogates (`"\\ud800"`), which cannot be encoded as UTF-8 when stored or logged.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # objects/arrays inside one another
MAX_INT_DIGITS = 30  # |n| < 10**30: more than any count, size or seed the APIs take
_INT_BOUND = 10**MAX_INT_DIGITS


class UnsafeJson(ValueError):
    """The body is JSON, but holds a value the server refuses; `path` names it ("" for the body)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class NotJson(ValueError):
    """The body is not JSON at all (the parser's own message)."""


def _refuse_constant(name: str) -> Any:
    raise UnsafeJson(f"{name} is not a number JSON allows; send a finite number")


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS + 1:  # refused before int() spends time on thousands of digits
        raise UnsafeJson(f"A number in the body has more than {MAX_INT_DIGITS} digits; send a smaller number.")
    return int(text)


def _label(path: str) -> str:
    return f"'{path}'" if path else "the body"


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise UnsafeJson for the first value `loads` would refuse (iterative: deep input cannot overflow)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                raise UnsafeJson(f"The JSON nests deeper than {max_depth} levels at {_label(path)}.", path)
            if isinstance(item, dict):
                for key, member in item.items():
                    _check_text(key, path, "key")
                    stack.append((member, _join(path, key), depth + 1))
            else:
                stack.extend((member, _join(path, index), depth + 1) for index, member in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, path, "value")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -_INT_BOUND < item < _INT_BOUND:
                raise UnsafeJson(
                    f"The number at {_label(path)} has more than {MAX_INT_DIGITS} digits; send a smaller number.", path
                )
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnsafeJson(f"The number at {_label(path)} is not finite ({item}); send a finite number.", path)


def _check_text(text: str, path: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeJson(
            f"The string {what} at {_label(path)} holds a lone UTF-16 surrogate ({text[exc.start]!r}), "
            "which is not valid Unicode text.",
            path,
        ) from None


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `raw`; NotJson when it is not JSON, UnsafeJson when it is but holds a value refused above."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_int=_parse_int)
    except UnsafeJson:
        raise
    except RecursionError:
        raise UnsafeJson(f"The JSON nests deeper than {max_depth} levels.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digits over Python's limit
        raise NotJson(str(exc)) from None
    check(value, max_depth=max_depth)
    return value
