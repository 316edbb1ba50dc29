"""The typed face of the store: models, endpoint configs, endpoints and their scaling as records, never raw rows.

Each `RecordTable` serialises one record type with `store/codec.py` under a kind in the store (store/base.py). A row
that cannot be read as its record is reported by kind and name (`problems()`, a warning in the log) and
skipped by `list()`; `get()` of it raises `store.errors.UnreadableRecord` so the caller can say which
resource is damaged. The rest of the control plane keeps working.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from modelhost.async_inference.records import AsyncRequest
from modelhost.autoscaling.records import ScalableTarget, ScalingActivity, ScalingPolicy, ScheduledAction
from modelhost.resources.endpoint import Endpoint
from modelhost.resources.endpoint_config import EndpointConfig
from modelhost.resources.model import Model
from modelhost.resources.transform_job import TransformJob, TransformObject
from modelhost.store.base import Store
from modelhost.store.codec import decode, encode
from modelhost.store.errors import UnreadableRecord

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # rows of format 1 (AWS-shaped documents, before typed records) are reported unreadable
T = TypeVar("T")


class Problems:
    """Unreadable rows, by (kind, name): rows that are not JSON (found by the store) and rows that are
    not readable records (found here); each is logged once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._seen: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def report(self, error: UnreadableRecord) -> None:
        with self._lock:
            if (error.kind, error.name) not in self._seen:
                log.warning("%s", error)
            self._seen[(error.kind, error.name)] = error.reason

    def clear(self, kind: str, name: str) -> None:
        with self._lock:
            self._seen.pop((kind, name.lower()), None)

    def _all(self) -> dict[tuple[str, str], str]:
        with self._lock:
            seen = dict(self._seen)
        seen.update({(p.kind, p.name): p.reason for p in self._store.problems()})
        return seen

    def names(self, kind: str) -> set[str]:
        return {name for k, name in self._all() if k == kind}

    def lines(self) -> list[str]:
        return [f"{kind} {name!r}: {why}" for (kind, name), why in sorted(self._all().items())]


class RecordTable(Generic[T]):
    """One kind of record in the store."""

    def __init__(self, store: Store, kind: str, record_type: type[T], problems: Problems) -> None:
        self._store = store
        self.kind = kind
        self._type = record_type
        self._problems = problems

    def _to_row(self, name: str, record: T) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "record": encode(record)}

    def _from_row(self, key: str, row: Any) -> T:
        try:
            if not isinstance(row, dict) or row.get("format") != FORMAT_VERSION:
                raise ValueError(f"not a format-{FORMAT_VERSION} record")
            return decode(self._type, row["record"])
        except (ValueError, KeyError, TypeError) as exc:
            error = UnreadableRecord(self.kind, key, str(exc))
            self._problems.report(error)
            raise error from exc

    def get(self, name: str) -> T | None:
        """The record, None when there is none; UnreadableRecord when its row is damaged."""
        try:
            row = self._store.get(self.kind, name)
        except UnreadableRecord as error:  # the row is not JSON at all
            self._problems.report(error)
            raise
        return None if row is None else self._from_row(name.lower(), row)

    def list(self) -> list[T]:
        """Every readable record; unreadable rows are reported and skipped."""
        records = []
        for key, row in self._store.items(self.kind):  # the raw store skips (and reports) rows that are not JSON
            try:
                records.append(self._from_row(key, row))
            except UnreadableRecord:
                continue
        return records

    def insert(self, name: str, record: T) -> None:
        """Raises store.base.AlreadyExists when the name is taken."""
        self._store.insert(self.kind, name, self._to_row(name, record))

    def put(self, name: str, record: T) -> None:
        self._store.put(self.kind, name, self._to_row(name, record))

    def delete(self, name: str) -> bool:
        deleted = self._store.delete(self.kind, name)
        self._problems.clear(self.kind, name)
        return deleted

    def list_under(self, prefix: str) -> builtins.list[T]:
        """The readable records whose names start with `prefix`, in name order."""
        records = []
        for key, row in self._store.items_under(self.kind, prefix):
            try:
                records.append(self._from_row(key, row))
            except UnreadableRecord:
                continue
        return records

    def put_many(self, records: builtins.list[tuple[str, T]]) -> None:
        """All stored in one transaction, or none."""
        self._store.put_many(self.kind, [(name, self._to_row(name, record)) for name, record in records])

    def delete_under(self, prefix: str) -> int:
        return self._store.delete_under(self.kind, prefix)

    def update(self, name: str, change: Callable[[T], T | None]) -> T | None:
        """Atomic read-modify-write: `change` gets the record and returns the new one (None: leave it as is).
        Returns the stored record afterwards, None when there is none."""
        result: list[T] = []

        def apply(row: dict[str, Any]) -> dict[str, Any] | None:
            record = self._from_row(name.lower(), row)
            changed = change(record)
            result.append(record if changed is None else changed)
            return None if changed is None else self._to_row(name, changed)

        if self._store.update(self.kind, name, apply) is None:
            return None
        return result[-1]


class Records:
    """The control plane's records, one table per kind."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.problems = Problems(store)
        self.models = RecordTable(store, "model", Model, self.problems)
        self.endpoint_configs = RecordTable(store, "endpoint_config", EndpointConfig, self.problems)
        self.endpoints = RecordTable(store, "endpoint", Endpoint, self.problems)
        # Application Auto Scaling (modelhost/autoscaling/scaling_store.py): keyed by naming.VariantRef.key,
        # policies and scheduled actions by naming.member_key, activities by their ActivityId
        self.scalable_targets = RecordTable(store, "scalable_target", ScalableTarget, self.problems)
        self.scaling_policies = RecordTable(store, "scaling_policy", ScalingPolicy, self.problems)
        self.scheduled_actions = RecordTable(store, "scheduled_action", ScheduledAction, self.problems)
        self.scaling_activities = RecordTable(store, "scaling_activity", ScalingActivity, self.problems)
        # InvokeEndpointAsync's durable queue (modelhost/async_inference/): one row per request, by its key
        self.async_requests = RecordTable(store, "async_request", AsyncRequest, self.problems)
        # batch transform (modelhost/batch/): jobs by name; their input objects by `<job key>/<index>`
        self.transform_jobs = RecordTable(store, "transform_job", TransformJob, self.problems)
        self.transform_objects = RecordTable(store, "transform_object", TransformObject, self.problems)

    def table(self, kind: str) -> RecordTable[Any]:
        every: tuple[RecordTable[Any], ...] = (
            self.models,
            self.endpoint_configs,
            self.endpoints,
            self.scalable_targets,
            self.scaling_policies,
            self.scheduled_actions,
            self.scaling_activities,
            self.async_requests,
            self.transform_jobs,
            self.transform_objects,
        )
        return {t.kind: t for t in every}[kind]
