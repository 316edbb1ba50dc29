"""The one owner of a store's unreadable rows: which ones were found, logged once each, cleared when repaired.

SqliteStore and PostgresStore both read rows through it, so a damaged row is reported the same way whichever
database holds it.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Iterable
from typing import Any

from modelhost.store.errors import UnreadableRecord
from modelhost.store.integrity import RecordProblem, decode_record

log = logging.getLogger(__name__)


class RecordProblems:
    def __init__(self, where: str, hint: str = "") -> None:
        self._where = where  # the store, as log lines name it (a path, or a redacted URL)
        self._hint = hint  # what to do about it, appended to the log line
        self._lock = threading.Lock()
        self._found: dict[tuple[str, str], RecordProblem] = {}

    def list(self) -> builtins.list[RecordProblem]:
        """Rows found unreadable (by kind and stored name) and not since repaired, sorted."""
        with self._lock:
            return sorted(self._found.values(), key=lambda p: (p.kind, p.name))

    def note(self, kind: str, key: str, reason: str) -> None:
        with self._lock:
            if (kind, key) not in self._found:
                log.warning(
                    'store: the %s "%s" in %s cannot be read (%s); it is skipped%s',
                    kind,
                    key,
                    self._where,
                    reason,
                    self._hint,
                )
            self._found[(kind, key)] = RecordProblem(kind, key, reason)

    def clear(self, kind: str, key: str) -> None:
        with self._lock:
            self._found.pop((kind, key), None)

    def decode(self, kind: str, key: str, data: object) -> dict[str, Any]:
        """One row's record; UnreadableRecord (and noted) when it cannot be read."""
        try:
            record = decode_record(data)
        except ValueError as exc:
            self.note(kind, key, str(exc))
            raise UnreadableRecord(kind, key, str(exc)) from None
        self.clear(kind, key)
        return record

    def readable(self, kind: str, rows: Iterable[tuple[Any, Any]]) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(key, record) of the rows that can be read; the others are noted and skipped."""
        records: builtins.list[tuple[str, dict[str, Any]]] = []
        for key, data in rows:
            try:
                records.append((str(key), decode_record(data)))
            except ValueError as exc:
                self.note(kind, str(key), str(exc))
        return records

    def readable_kind(self, kind: str, rows: Iterable[tuple[Any, Any]]) -> builtins.list[tuple[str, dict[str, Any]]]:
        """As `readable`, for every row of `kind`: the kind's noted problems whose rows now read, or are gone, clear."""
        rows = builtins.list(rows)
        records = self.readable(kind, rows)
        bad = {str(key) for key, _ in rows} - {key for key, _ in records}
        with self._lock:
            for stale in [key for (k_kind, key) in self._found if k_kind == kind and key not in bad]:
                del self._found[(kind, stale)]
        return records
