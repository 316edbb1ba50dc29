"""The Store protocol: what every store (SQLite in the home, PostgreSQL shared by several servers) provides.

Resources are JSON documents keyed by kind and lower-cased name (SageMaker names are unique case-insensitively);
instance rows record the worker processes a server started. The semantics every implementation keeps (the
contract tests in tests/integration/fleet/test_store_contract.py run against each):

* `insert` raises AlreadyExists when the (kind, lower-cased name) is taken, also when two servers race for it;
* `update` is an atomic read-modify-write: no other writer (thread or server) changes the row in between;
* `put_many` stores every row in one transaction, or none;
* a row that cannot be decoded is skipped by `list`/`items`/`items_under`, reported by `problems()`, and
  refused by `get`/`update` with UnreadableRecord;
* a failure of the storage itself (disk full, database gone) is StoreUnavailable, which the API answers
  with 503 ServiceUnavailable.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from modelhost.store.integrity import RecordProblem


class AlreadyExists(Exception):
    """A resource with this kind and (case-insensitive) name is already stored."""


@dataclass(frozen=True, slots=True)
class InstanceRow:
    instance_id: str
    endpoint_key: str
    pid: int  # worker process id on the host that started it
    port: int
    started: float  # epoch seconds


Change = Callable[[dict[str, Any]], dict[str, Any] | None]


class Store(Protocol):
    """Durable desired and observed state, as JSON documents by kind and case-insensitive name."""

    @property
    def location(self) -> str:
        """Where the store is, for messages (a path, or a database URL without its password)."""
        ...

    def open(self) -> None:
        """Connects (creating the schema when missing); StoreCorrupt or StoreUnavailable when it cannot."""
        ...

    def close(self) -> None: ...

    def problems(self) -> builtins.list[RecordProblem]:
        """Rows found unreadable (by kind and stored name) and not since repaired, sorted."""
        ...

    def insert(self, kind: str, name: str, data: dict[str, Any]) -> None:
        """Stores a new record; AlreadyExists when the name is taken."""
        ...

    def put(self, kind: str, name: str, data: dict[str, Any]) -> None:
        """Stores the record, replacing any with that name."""
        ...

    def update(self, kind: str, name: str, change: Change) -> dict[str, Any] | None:
        """Atomic read-modify-write: `change` gets the record and returns the new one (None: leave it).

        Returns the stored record after the change, or None when there is no such record; UnreadableRecord
        when the stored row cannot be decoded.
        """
        ...

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The record, None when there is none; UnreadableRecord when the stored row cannot be decoded."""
        ...

    def delete(self, kind: str, name: str) -> bool:
        """Whether a record was there to delete."""
        ...

    def put_many(self, kind: str, rows: builtins.list[tuple[str, dict[str, Any]]]) -> None:
        """Every (name, data) in one transaction: all are stored or none."""
        ...

    def items_under(self, kind: str, prefix: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(stored name, record) of the readable records of `kind` whose names start with `prefix`
        (lower-cased), in name order."""
        ...

    def delete_under(self, kind: str, prefix: str) -> int:
        """Deletes the records of `kind` whose names start with `prefix`; how many."""
        ...

    def list(self, kind: str) -> builtins.list[dict[str, Any]]:
        """Every readable record of `kind`."""
        ...

    def items(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(stored name, record) of every readable record of `kind`."""
        ...

    def add_instance(self, row: InstanceRow) -> None: ...

    def remove_instance(self, instance_id: str) -> None: ...

    def instances(self) -> builtins.list[InstanceRow]:
        """Every readable instance row."""
        ...
