"""PairList: the ordered key -> value list that carries an Input's or Output's content."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class PairList:
    """Ordered (key, value) pairs; keys may repeat, `get` returns the first match."""

    def __init__(
        self,
        keys: list[str] | None = None,
        values: list[Any] | None = None,
        pair_list: list[tuple[str, Any]] | None = None,
    ) -> None:
        if pair_list is not None:
            self.keys = [key for key, _ in pair_list]
            self.values = [value for _, value in pair_list]
        else:
            self.keys = list(keys or [])
            self.values = list(values or [])
        if len(self.keys) != len(self.values):
            raise ValueError("keys and values must have the same length")

    def add(self, key: str | None = None, value: Any = None, pair: tuple[str, Any] | None = None) -> None:
        if pair is not None:
            key, value = pair
        self.keys.append(key)  # type: ignore[arg-type]
        self.values.append(value)

    def size(self) -> int:
        return len(self.keys)

    def is_empty(self) -> bool:
        return not self.keys

    def key_at(self, index: int) -> str:
        return self.keys[index]

    def value_at(self, index: int) -> Any:
        return self.values[index]

    def get(self, key: str) -> Any:
        for k, v in zip(self.keys, self.values, strict=True):
            if k == key:
                return v
        return None

    def get_keys(self) -> list[str]:
        return self.keys

    def get_values(self) -> list[Any]:
        return self.values

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(zip(self.keys, self.values, strict=True))

    def __repr__(self) -> str:
        return f"PairList(keys={self.keys!r})"
