"""SQLite store: the only module that knows the schema.

Resources (models, endpoint configs, endpoints) are JSON documents keyed by kind and lower-cased name
(SageMaker names are unique case-insensitively). Instances record the worker processes started for
endpoints so a restarted server can clean up after a crash. Calls are short and serialised by a lock;
the connection is shared by the event loop and the controller's threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    endpoint_key TEXT NOT NULL,
    pid INTEGER NOT NULL,
    port INTEGER NOT NULL,
    started REAL NOT NULL
);
"""


class AlreadyExists(Exception):
    """A resource with this kind and (case-insensitive) name is already stored."""


@dataclass(frozen=True, slots=True)
class InstanceRow:
    instance_id: str
    endpoint_key: str
    pid: int  # worker process id on this host
    port: int
    started: float  # epoch seconds


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("store is not open")
            yield self._conn

    # resources -------------------------------------------------------------------------------
    def insert(self, kind: str, name: str, data: dict[str, Any]) -> None:
        with self._db() as db:
            try:
                db.execute(
                    "INSERT INTO resources (kind, key, data) VALUES (?, ?, ?)",
                    (kind, name.lower(), json.dumps(data)),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(name) from exc

    def put(self, kind: str, name: str, data: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO resources (kind, key, data) VALUES (?, ?, ?)",
                (kind, name.lower(), json.dumps(data)),
            )

    def update(
        self, kind: str, name: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Atomic read-modify-write: `change` gets the record and returns the new one (None: leave it).

        Returns the stored record after the change, or None when there is no such record.
        """
        with self._db() as db:
            row = db.execute("SELECT data FROM resources WHERE kind = ? AND key = ?", (kind, name.lower())).fetchone()
            if row is None:
                return None
            record = json.loads(row[0])
            changed = change(record)
            if changed is None:
                return record
            db.execute(
                "UPDATE resources SET data = ? WHERE kind = ? AND key = ?",
                (json.dumps(changed), kind, name.lower()),
            )
            return changed

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute("SELECT data FROM resources WHERE kind = ? AND key = ?", (kind, name.lower())).fetchone()
        return None if row is None else json.loads(row[0])

    def delete(self, kind: str, name: str) -> bool:
        with self._db() as db:
            cur = db.execute("DELETE FROM resources WHERE kind = ? AND key = ?", (kind, name.lower()))
        return cur.rowcount > 0

    def list(self, kind: str) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT data FROM resources WHERE kind = ?", (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    # instances -------------------------------------------------------------------------------
    def add_instance(self, row: InstanceRow) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?)",
                (row.instance_id, row.endpoint_key, row.pid, row.port, row.started),
            )

    def remove_instance(self, instance_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))

    def instances(self) -> list[InstanceRow]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM instances").fetchall()
        return [InstanceRow(*r) for r in rows]
