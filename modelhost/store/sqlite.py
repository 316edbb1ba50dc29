"""SQLite store: the only module that knows the schema.

Resources (models, endpoint configs, endpoints) are JSON documents keyed by kind and lower-cased name
(SageMaker names are unique case-insensitively). Instances record the worker processes started for
endpoints so a restarted server can clean up after a crash. Calls are short and serialised by a lock;
the connection is shared by the event loop and the controller's threads.

The store never loses data silently: a file that exists but is empty or damaged is refused at `open`
(StoreCorrupt, the file left as it is); a row that cannot be decoded is skipped by `list`, reported by
`problems()` and refused by `get` (UnreadableRecord); SQLite failures such as a full disk become
StoreUnavailable. `start_backups` keeps rolling copies in HOME/backups (see backups.py).
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelhost.store.backups import backups_dir_for, write_backup
from modelhost.store.base import AlreadyExists, InstanceRow
from modelhost.store.errors import StoreCorrupt, StoreError, StoreUnavailable, UnreadableRecord
from modelhost.store.integrity import RecordProblem, check_store_file, instance_row_problem
from modelhost.store.problems import RecordProblems

__all__ = [
    "AlreadyExists",
    "InstanceRow",
    "RecordProblem",
    "SqliteStore",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "UnreadableRecord",
]

log = logging.getLogger(__name__)

BACKUP_INTERVAL_S = 600.0
BACKUPS_KEPT = 5

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


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


class SqliteStore:
    """The Store (store/base.py) in one SQLite file in the home: one server at a time (home.py's lock)."""

    def __init__(
        self,
        path: Path,
        *,
        backups_dir: Path | None = None,
        backups_kept: int = BACKUPS_KEPT,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self._path = path
        self._backups_dir = backups_dir or backups_dir_for(path)
        self._backups_kept = backups_kept
        self._now_s = now_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._problems = RecordProblems(str(path), "; run `modelhost doctor`")
        self._backups_stop = threading.Event()
        self._backup_thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def location(self) -> str:
        return str(self._path)

    def open(self) -> None:
        """Opens the store, creating it when the file is missing; StoreCorrupt (file untouched) when it is damaged."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            if not check_store_file(self._path):
                self._create()
            conn = _connect(self._path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(self._path, "open", str(exc)) from exc
        with self._lock:
            self._conn = conn
        try:
            self._scan()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        """A new store is built beside its final name and moved into place, so a crash never leaves an empty file."""
        fresh = self._path.with_name(self._path.name + ".new")
        fresh.unlink(missing_ok=True)
        _connect(fresh).close()
        os.chmod(fresh, 0o600)  # readable by the server's user only (its -wal and -shm files follow its mode)
        os.replace(fresh, self._path)

    def _scan(self) -> None:
        """Reads every row once so damaged ones are reported at start-up, not when first touched."""
        with self._db("read") as db:
            kinds = [str(r[0]) for r in db.execute("SELECT DISTINCT kind FROM resources").fetchall()]
        for kind in kinds:
            self.list(kind)
        self.instances()

    def close(self) -> None:
        self._backups_stop.set()
        if self._backup_thread is not None:
            self._backup_thread.join()
            self._backup_thread = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _db(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("store is not open")
            try:
                yield self._conn
            except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
                raise
            except sqlite3.DatabaseError as exc:  # disk full, read-only, I/O error, locked, malformed
                raise StoreUnavailable(self._path, action, str(exc)) from exc

    # damaged rows ----------------------------------------------------------------------------
    def problems(self) -> builtins.list[RecordProblem]:
        """Rows found unreadable (by kind and stored name) and not since repaired, sorted."""
        return self._problems.list()

    # resources -------------------------------------------------------------------------------
    def insert(self, kind: str, name: str, data: dict[str, Any]) -> None:
        with self._db("write") as db:
            try:
                db.execute(
                    "INSERT INTO resources (kind, key, data) VALUES (?, ?, ?)",
                    (kind, name.lower(), _encode(data)),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(name) from exc

    def put(self, kind: str, name: str, data: dict[str, Any]) -> None:
        with self._db("write") as db:
            db.execute(
                "INSERT OR REPLACE INTO resources (kind, key, data) VALUES (?, ?, ?)",
                (kind, name.lower(), _encode(data)),
            )
            self._problems.clear(kind, name.lower())

    def update(
        self, kind: str, name: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Atomic read-modify-write: `change` gets the record and returns the new one (None: leave it).

        Returns the stored record after the change, or None when there is no such record; UnreadableRecord
        when the stored row cannot be decoded.
        """
        with self._db("write") as db:
            row = db.execute("SELECT data FROM resources WHERE kind = ? AND key = ?", (kind, name.lower())).fetchone()
            if row is None:
                return None
            record = self._problems.decode(kind, name.lower(), row[0])
            changed = change(record)
            if changed is None:
                return record
            db.execute(
                "UPDATE resources SET data = ? WHERE kind = ? AND key = ?",
                (_encode(changed), kind, name.lower()),
            )
            return changed

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The record, None when there is none; UnreadableRecord when the stored row cannot be decoded."""
        with self._db("read") as db:
            row = db.execute("SELECT data FROM resources WHERE kind = ? AND key = ?", (kind, name.lower())).fetchone()
        return None if row is None else self._problems.decode(kind, name.lower(), row[0])

    def delete(self, kind: str, name: str) -> bool:
        with self._db("write") as db:
            cur = db.execute("DELETE FROM resources WHERE kind = ? AND key = ?", (kind, name.lower()))
            self._problems.clear(kind, name.lower())
        return cur.rowcount > 0

    def put_many(self, kind: str, rows: builtins.list[tuple[str, dict[str, Any]]]) -> None:
        """Every (name, data) in one transaction: all are stored or none."""
        encoded = [(kind, name.lower(), _encode(data)) for name, data in rows]
        with self._db("write") as db:
            db.execute("BEGIN")
            try:
                db.executemany("INSERT OR REPLACE INTO resources (kind, key, data) VALUES (?, ?, ?)", encoded)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # never leave the shared connection inside a transaction
                    db.execute("ROLLBACK")
                raise

    def items_under(self, kind: str, prefix: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(stored name, record) of the readable records of `kind` whose names start with `prefix` (lower-cased),
        in name order; read through the primary key, not a scan of the kind."""
        low = prefix.lower()
        with self._db("read") as db:
            rows = db.execute(
                "SELECT key, data FROM resources WHERE kind = ? AND key >= ? AND key < ? ORDER BY key",
                (kind, low, low + "\U0010ffff"),
            ).fetchall()
        return self._problems.readable(kind, rows)

    def delete_under(self, kind: str, prefix: str) -> int:
        low = prefix.lower()
        with self._db("write") as db:
            cur = db.execute(
                "DELETE FROM resources WHERE kind = ? AND key >= ? AND key < ?", (kind, low, low + "\U0010ffff")
            )
        return cur.rowcount

    def list(self, kind: str) -> builtins.list[dict[str, Any]]:
        """Every readable record of `kind`; unreadable rows are skipped and reported by `problems()`."""
        return [record for _, record in self.items(kind)]

    def items(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(stored name, record) of every readable record of `kind`; unreadable rows as in `list`."""
        with self._db("read") as db:
            rows = db.execute("SELECT key, data FROM resources WHERE kind = ?", (kind,)).fetchall()
            records = self._problems.readable_kind(kind, rows)
        return records

    # instances -------------------------------------------------------------------------------
    def add_instance(self, row: InstanceRow) -> None:
        with self._db("write") as db:
            db.execute(
                "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?)",
                (row.instance_id, row.endpoint_key, row.pid, row.port, row.started),
            )
            self._problems.clear("instance", row.instance_id)

    def remove_instance(self, instance_id: str) -> None:
        with self._db("write") as db:
            db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))
            self._problems.clear("instance", instance_id)

    def instances(self) -> builtins.list[InstanceRow]:
        """Every readable instance row; unreadable ones are skipped and reported by `problems()`."""
        with self._db("read") as db:
            rows = db.execute("SELECT instance_id, endpoint_key, pid, port, started FROM instances").fetchall()
            result: builtins.list[InstanceRow] = []
            for row in rows:
                problem = instance_row_problem(tuple(row))
                if problem is None:
                    result.append(InstanceRow(*row))
                else:
                    self._problems.note("instance", str(row[0]), problem)
        return result

    # backups ---------------------------------------------------------------------------------
    def backup_now(self) -> Path | None:
        """Writes a backup into the backups folder and keeps the newest ones; None (and a warning) if it failed."""
        with self._lock:
            if self._conn is None:
                return None
            try:
                path = write_backup(self._conn, self._backups_dir, self._now_s(), self._backups_kept)
            except (sqlite3.Error, OSError) as exc:
                log.warning("store: backup into %s failed (%s); the server goes on", self._backups_dir, exc)
                return None
        log.info("store: backed up to %s", path)
        return path

    def start_backups(self, interval_s: float = BACKUP_INTERVAL_S) -> None:
        """Backs up now, then every `interval_s`, in a daemon thread that `close()` stops."""
        if self._backup_thread is not None:
            return
        self._backups_stop.clear()
        self._backup_thread = threading.Thread(
            target=self._backup_loop, args=(interval_s,), name="store-backups", daemon=True
        )
        self._backup_thread.start()

    def _backup_loop(self, interval_s: float) -> None:
        while not self._backups_stop.is_set():
            try:
                self.backup_now()
            except Exception:  # a backup never takes the server down
                log.exception("store: backup failed")
            if self._backups_stop.wait(interval_s):
                return


def _encode(data: dict[str, Any]) -> str:
    return json.dumps(data)
