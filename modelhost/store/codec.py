"""Records ↔ JSON documents, driven by the dataclasses' own type hints (the store's only serialisation).

Handles what `modelhost/resources/` uses: frozen dataclasses, `tuple[X, ...]`, `X | None`, `Mapping[str, ...]`
of JSON values (copied as they are, never walked), enums and JSON scalars. Decoding checks every field, so a
row that does not fit raises `ValueError` naming the field; nothing half-read reaches a caller.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

SCALARS = (str, int, float, bool)


def encode(value: Any) -> Any:
    """A JSON-serialisable form of a record (snake_case keys, enums by value)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):  # records' mappings hold JSON values (environments, request documents)
        return dict(value)
    return value


def decode(cls: type[T], data: Any) -> T:
    """The record of type `cls` that `data` (from `encode`) describes. Raises ValueError."""
    return typing.cast(T, _decode(cls, data, cls.__name__))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        return _decode_union(tp, data, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, data, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError as exc:
            raise ValueError(f"{where}: {data!r} is not a {tp.__name__}") from exc
    if origin is tuple:
        item = typing.get_args(tp)[0]
        _expect(data, list, where)
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(data))
    if origin in (Mapping, dict, typing.get_origin(Mapping[str, Any])):
        value_type = typing.get_args(tp)[1]
        _expect(data, dict, where)
        return {str(k): _decode(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError(f"{where}: expected a number, got {type(data).__name__}")
        return float(data)
    if tp in SCALARS:
        _expect(data, tp, where)
        return data
    raise ValueError(f"{where}: cannot decode type {tp!r}")


def _decode_union(tp: Any, data: Any, where: str) -> Any:
    args = typing.get_args(tp)
    if data is None and type(None) in args:
        return None
    others = [a for a in args if a is not type(None)]
    if len(others) != 1:
        raise ValueError(f"{where}: unsupported union {tp!r}")
    return _decode(others[0], data, where)


def _decode_dataclass(cls: type, data: Any, where: str) -> Any:
    _expect(data, dict, where)
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}: missing {f.name}")
    return cls(**values)


def _expect(data: Any, kind: type, where: str) -> None:
    if not isinstance(data, kind) or (kind is int and isinstance(data, bool)):
        raise ValueError(f"{where}: expected {kind.__name__}, got {type(data).__name__}")
