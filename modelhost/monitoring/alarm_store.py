"""Durable alarms: the `metric_alarms` and `alarm_history` tables beside the metrics in HOME/metrics.db.

Its own connection to the metric store's file (WAL mode lets both write in turn); every method does SQLite
I/O under one lock, so call them off the event loop. History is kept 30 days, as CloudWatch keeps it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelhost.monitoring.alarms import (
    AlarmConfig,
    AlarmLimitExceeded,
    AlarmStatus,
    AlarmStoreError,
    HistoryItem,
    MetricAlarm,
)

MAX_ALARMS = 10_000  # modelhost's limit; PutMetricAlarm past it is LimitExceeded
HISTORY_RETENTION_S = 30 * 86400

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metric_alarms (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    config_updated_s REAL NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    reason_data TEXT,
    state_updated_s REAL NOT NULL,
    transitioned_s REAL NOT NULL,
    recent_values TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    at_s REAL NOT NULL,
    item_type TEXT NOT NULL,
    summary TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_history_at ON alarm_history (at_s);
"""


def _alarm(row: tuple[Any, ...]) -> MetricAlarm:
    config, state, reason, reason_data, updated_s, transitioned_s, values = row
    status = AlarmStatus(state, reason, reason_data, updated_s, transitioned_s, tuple(json.loads(values)))
    return MetricAlarm(AlarmConfig.from_json(config), status)


_COLUMNS = "config, state, reason, reason_data, state_updated_s, transitioned_s, recent_values"


class SqliteAlarmStore:
    """Metric alarms and their history in one SQLite file (the server uses HOME/metrics.db)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"Cannot open the alarm tables of {self._path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"Cannot {what} in {self._path}: {exc}") from exc

    def _read(self, query: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(query, args))
            except sqlite3.Error as exc:
                raise AlarmStoreError(f"Cannot read the alarms of {self._path}: {exc}") from exc

    def put(self, config: AlarmConfig, status: AlarmStatus, history: HistoryItem) -> bool:
        """Create the alarm with `status`, or replace an existing one's configuration (its state and tags are
        kept, as CloudWatch keeps them); True when created. LimitExceeded past MAX_ALARMS alarms."""
        with self._transaction("store an alarm") as db:
            row = db.execute("SELECT config FROM metric_alarms WHERE name = ?", (config.name,)).fetchone()
            if row is None:
                count = db.execute("SELECT count(*) FROM metric_alarms").fetchone()[0]
                if count >= MAX_ALARMS:
                    raise AlarmLimitExceeded(
                        f"The maximum number of alarms ({MAX_ALARMS}) has been reached; delete alarms to add others."
                    )
                db.execute(
                    f"INSERT INTO metric_alarms (name, config_updated_s, {_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (config.name, config.updated_s, config.to_json(), status.value, status.reason, status.reason_data,
                     status.updated_s, status.transitioned_s, json.dumps(list(status.recent_values))),
                )  # fmt: skip
            else:
                merged = replace(config, tags=AlarmConfig.from_json(row[0]).tags)
                db.execute(
                    "UPDATE metric_alarms SET config = ?, config_updated_s = ? WHERE name = ?",
                    (merged.to_json(), config.updated_s, config.name),
                )
            self._add_history(db, history)
        return row is None

    def get(self, name: str) -> MetricAlarm | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM metric_alarms WHERE name = ?", (name,))
        return _alarm(rows[0]) if rows else None

    def all(self) -> list[MetricAlarm]:
        """Every alarm, sorted by name."""
        return [_alarm(row) for row in self._read(f"SELECT {_COLUMNS} FROM metric_alarms ORDER BY name")]

    def delete(self, names: list[str]) -> list[str]:
        """Remove the alarms of these names that exist (their history stays); returns the names removed."""
        removed = []
        with self._transaction("delete alarms") as db:
            for name in dict.fromkeys(names):
                if db.execute("DELETE FROM metric_alarms WHERE name = ?", (name,)).rowcount:
                    removed.append(name)
        return removed

    def set_status(
        self, name: str, status: AlarmStatus, history: HistoryItem | None, *, config_updated_s: float | None = None
    ) -> bool:
        """Write an alarm's state (and its history item); with `config_updated_s`, only if its configuration is
        still the one evaluated. False when the alarm is gone or was reconfigured meanwhile."""
        query = (
            "UPDATE metric_alarms SET state = ?, reason = ?, reason_data = ?, state_updated_s = ?, "
            "transitioned_s = ?, recent_values = ? WHERE name = ?"
        )
        args: list[object] = [status.value, status.reason, status.reason_data, status.updated_s,
                              status.transitioned_s, json.dumps(list(status.recent_values)), name]  # fmt: skip
        if config_updated_s is not None:
            query += " AND config_updated_s = ?"
            args.append(config_updated_s)
        with self._transaction("store an alarm state") as db:
            changed = db.execute(query, args).rowcount > 0
            if changed and history is not None:
                self._add_history(db, history)
        return changed

    def set_actions_enabled(self, names: list[str], enabled: bool) -> int:
        """ActionsEnabled for the named alarms that exist (others are ignored, as CloudWatch ignores them)."""
        changed = 0
        with self._transaction("change alarm actions") as db:
            for name in dict.fromkeys(names):
                row = db.execute("SELECT config FROM metric_alarms WHERE name = ?", (name,)).fetchone()
                if row is None:
                    continue
                config = replace(AlarmConfig.from_json(row[0]), actions_enabled=enabled)
                db.execute("UPDATE metric_alarms SET config = ? WHERE name = ?", (config.to_json(), name))
                changed += 1
        return changed

    def _add_history(self, db: sqlite3.Connection, item: HistoryItem) -> None:
        db.execute(
            "INSERT INTO alarm_history (name, at_s, item_type, summary, data) VALUES (?, ?, ?, ?, ?)",
            (item.alarm_name, item.timestamp_s, item.item_type, item.summary, item.data),
        )
        db.execute("DELETE FROM alarm_history WHERE at_s < ?", (item.timestamp_s - HISTORY_RETENTION_S,))

    def history(
        self,
        name: str | None,
        item_type: str | None,
        start_s: float | None,
        end_s: float | None,
        ascending: bool,
    ) -> list[HistoryItem]:
        """History items matching the filters (StartDate inclusive, EndDate exclusive), in time order."""
        query = "SELECT name, at_s, item_type, summary, data FROM alarm_history WHERE 1 = 1"
        args: list[object] = []
        for clause, value in (("name = ?", name), ("item_type = ?", item_type), ("at_s >= ?", start_s),
                              ("at_s < ?", end_s)):  # fmt: skip
            if value is not None:
                query += f" AND {clause}"
                args.append(value)
        query += " ORDER BY at_s, id" if ascending else " ORDER BY at_s DESC, id DESC"
        return [HistoryItem(*row) for row in self._read(query, tuple(args))]
