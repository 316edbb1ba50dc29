"""PostgreSQL store: the Store (store/base.py) in a database several modelhost servers share.

The same documents as the SQLite store, in two tables created on first use (`modelhost_resources`,
`modelhost_instances`; CREATE ... IF NOT EXISTS, under an advisory lock so two servers starting together do not
race). Every statement is parameterised. Calls are short and serialised by a lock on one connection (the event
loop and the controller's threads share it, as they share SQLite's); `update` holds the row (SELECT ... FOR
UPDATE) for its read-modify-write, so writers on different servers never interleave.

When the database goes away, every call raises StoreUnavailable (503 at the API) at once: a broken connection is
dropped, and a new one is tried at most once per `retry_after_s`, so the API does not hang on connect timeouts.
The URL's password never appears in a message or log line (store/urls.py).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, LiteralString

from modelhost.store.base import AlreadyExists, Change, InstanceRow
from modelhost.store.errors import StoreUnavailable, StoreUrlInvalid
from modelhost.store.integrity import RecordProblem, instance_row_problem
from modelhost.store.problems import RecordProblems
from modelhost.store.urls import postgres_url, redact, scrub

try:
    import psycopg
    import psycopg.conninfo
    import psycopg.errors
except ImportError:  # the optional extra: pip install 'modelhost[postgres]'
    psycopg = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
RETRY_AFTER_S = 1.0
STATEMENT_TIMEOUT_MS = 15_000  # no store call waits longer than this on another server's row lock
SCHEMA_LOCK_KEY = 0x6D6F64656C736368  # pg_advisory_xact_lock key for creating the tables ("modelsch")
# libpq settings for every connection unless the URL sets them: a dead peer is noticed within ~20 s on both
# sides (keepalives), and a write to a peer that stopped acknowledging fails after 15 s (tcp_user_timeout)
CONNECTION_DEFAULTS = {
    "application_name": "modelhost",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
}

# per-session server settings: statements never wait long on another server's row lock, and the server side
# gives up on a silent client after ~11 s (keepalives, while nothing is unacknowledged) or once data it sent
# stays unacknowledged for 15 s (tcp_user_timeout, PostgreSQL 12+; without it a cut connection with data in
# flight lives on for the kernel's ~15 min of retransmissions): what frees a cut-off leader's lock
# (store/leader.py). On a unix socket these are ignored.
SESSION_SETTINGS = {
    "statement_timeout": str(STATEMENT_TIMEOUT_MS),
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "15000",
}

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS modelhost_resources (
        kind TEXT NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    )""",
    """CREATE TABLE IF NOT EXISTS modelhost_instances (
        instance_id TEXT PRIMARY KEY,
        endpoint_key TEXT NOT NULL,
        pid INTEGER NOT NULL,
        port INTEGER NOT NULL,
        started DOUBLE PRECISION NOT NULL
    )""",
)


def require_driver() -> None:
    """StoreUrlInvalid saying what to install when psycopg is missing."""
    if psycopg is None:
        raise StoreUrlInvalid(
            "a PostgreSQL store needs the psycopg driver: pip install 'modelhost[postgres]' (or 'psycopg[binary]')"
        )


def conninfo(url: str) -> str:
    """The libpq connection string of a store URL, with modelhost's connection defaults where it sets none."""
    require_driver()
    try:
        params = psycopg.conninfo.conninfo_to_dict(postgres_url(url))
    except psycopg.ProgrammingError as exc:
        raise StoreUrlInvalid(f"the store URL {redact(url)} is not valid: {scrub(str(exc), url)}") from None
    for key, value in CONNECTION_DEFAULTS.items():
        params.setdefault(key, value)
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def connect(info: str, url: str, action: str) -> psycopg.Connection[Any]:
    """An autocommit connection; StoreUnavailable naming the redacted URL (never the password) when refused."""
    try:
        conn = psycopg.connect(info, autocommit=True)
    except psycopg.Error as exc:
        raise StoreUnavailable(redact(url), action, _cause(exc, url), shared=True) from None
    try:
        for name, value in SESSION_SETTINGS.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    except psycopg.Error as exc:
        conn.close()
        raise StoreUnavailable(redact(url), action, _cause(exc, url), shared=True) from None
    return conn


def _cause(exc: BaseException, url: str) -> str:
    """The driver's message on one line (libpq adds hint lines), without the URL's secrets."""
    return scrub("; ".join(line.strip() for line in str(exc).splitlines() if line.strip()), url)


class PostgresStore:
    """The Store in PostgreSQL; see the module docstring."""

    def __init__(
        self, url: str, *, retry_after_s: float = RETRY_AFTER_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = url
        self._info = conninfo(url)  # StoreUrlInvalid before anything else happens
        self._where = redact(url)
        self._retry_after_s = retry_after_s
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._opened = False
        self._refused: tuple[float, StoreUnavailable] | None = None  # (retry at, why) after a failed connect
        self._failing = False  # the last call failed: its detail is logged once, not per call
        self._problems = RecordProblems(self._where)

    @property
    def location(self) -> str:
        return self._where

    @property
    def url(self) -> str:
        """The URL as given, password included: for connections of its own (the leader lock), never for printing."""
        return self._url

    def open(self) -> None:
        """Connects and creates the tables when missing; StoreUnavailable when the database cannot be reached."""
        with self._lock:
            conn = connect(self._info, self._url, "open")
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                    for statement in SCHEMA:
                        conn.execute(statement)
            except psycopg.Error as exc:
                conn.close()
                cause = _cause(exc, self._url)
                raise StoreUnavailable(self._where, "create the tables of", cause, shared=True) from None
            self._conn = conn
            self._opened = True
        try:
            self._scan()
        except BaseException:
            self.close()
            raise

    def _scan(self) -> None:
        """Reads every row once so damaged ones are reported at start-up, not when first touched."""
        kinds = [str(r[0]) for r in self._rows("SELECT DISTINCT kind FROM modelhost_resources", ())]
        for kind in kinds:
            self.items(kind)
        self.instances()

    def close(self) -> None:
        with self._lock:
            self._opened = False
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self, action: str) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop()
        now = self._monotonic()
        if self._refused is not None and now < self._refused[0]:
            why = self._refused[1]  # a new exception each time: re-raising one would grow its traceback
            raise StoreUnavailable(why.path, action, why.cause, shared=True) from None
        try:
            self._conn = connect(self._info, self._url, action)
        except StoreUnavailable as exc:
            self._refused = (now + self._retry_after_s, exc)
            self._failed(exc)
            raise
        if self._refused is not None:
            log.info("store: the database %s answers again", self._where)
        self._refused = None
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _rows(self, query: LiteralString, params: tuple[object, ...]) -> builtins.list[tuple[Any, ...]]:
        """The rows of one read. A connection that served before and turns out dead (the database restarted or
        failed over since) is replaced once, so the read succeeds when the database answers again."""
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None and not self._conn.closed and not self._conn.broken
                try:
                    with self._db("read") as db:
                        return db.execute(query, params).fetchall()
                except StoreUnavailable:
                    if attempt == 2 or not reused or self._conn is not None:  # _db drops a connection found dead
                        raise
                    log.info("store: the connection to %s was dead; reading on a new one", self._where)
        raise AssertionError("unreachable")

    @contextmanager
    def _db(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if not self._opened:
                raise RuntimeError("store is not open")
            conn = self._connection(action)
            try:
                yield conn
            except psycopg.errors.UniqueViolation:
                raise
            except psycopg.Error as exc:  # the server went away, refused the statement, timed out, disk full
                if conn.closed or conn.broken:
                    self._drop()
                failure = StoreUnavailable(self._where, action, _cause(exc, self._url), shared=True)
                self._failed(failure)
                raise failure from None
            self._failing = False

    def _failed(self, exc: StoreUnavailable) -> None:
        """The detail (redacted) goes to the log, once per outage; clients are told only that the store is
        unavailable (StoreUnavailable's message for a shared store)."""
        if not self._failing:
            log.warning("store: %s", exc.detail)
        self._failing = True

    # damaged rows ----------------------------------------------------------------------------
    def problems(self) -> builtins.list[RecordProblem]:
        """Rows found unreadable (by kind and stored name) and not since repaired, sorted."""
        return self._problems.list()

    # resources -------------------------------------------------------------------------------
    def insert(self, kind: str, name: str, data: dict[str, Any]) -> None:
        with self._db("write") as db:
            try:
                db.execute(
                    "INSERT INTO modelhost_resources (kind, key, data) VALUES (%s, %s, %s)",
                    (kind, name.lower(), json.dumps(data)),
                )
            except psycopg.errors.UniqueViolation:
                raise AlreadyExists(name) from None

    def put(self, kind: str, name: str, data: dict[str, Any]) -> None:
        with self._db("write") as db:
            db.execute(
                "INSERT INTO modelhost_resources (kind, key, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (kind, key) DO UPDATE SET data = EXCLUDED.data",
                (kind, name.lower(), json.dumps(data)),
            )
            self._problems.clear(kind, name.lower())

    def update(self, kind: str, name: str, change: Change) -> dict[str, Any] | None:
        key = name.lower()
        with self._db("write") as db, db.transaction():
            row = db.execute(
                "SELECT data FROM modelhost_resources WHERE kind = %s AND key = %s FOR UPDATE", (kind, key)
            ).fetchone()
            if row is None:
                return None
            record = self._problems.decode(kind, key, row[0])
            changed = change(record)
            if changed is None:
                return record
            db.execute(
                "UPDATE modelhost_resources SET data = %s WHERE kind = %s AND key = %s",
                (json.dumps(changed), kind, key),
            )
            return changed

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT data FROM modelhost_resources WHERE kind = %s AND key = %s", (kind, name.lower()))
        return None if not rows else self._problems.decode(kind, name.lower(), rows[0][0])

    def delete(self, kind: str, name: str) -> bool:
        with self._db("write") as db:
            cur = db.execute("DELETE FROM modelhost_resources WHERE kind = %s AND key = %s", (kind, name.lower()))
            self._problems.clear(kind, name.lower())
        return cur.rowcount > 0

    def put_many(self, kind: str, rows: builtins.list[tuple[str, dict[str, Any]]]) -> None:
        encoded = [(kind, name.lower(), json.dumps(data)) for name, data in rows]
        with self._db("write") as db, db.transaction(), db.cursor() as cur:
            cur.executemany(
                "INSERT INTO modelhost_resources (kind, key, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (kind, key) DO UPDATE SET data = EXCLUDED.data",
                encoded,
            )

    def items_under(self, kind: str, prefix: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        low = prefix.lower()
        rows = self._rows(
            "SELECT key, data FROM modelhost_resources WHERE kind = %s AND key >= %s AND key < %s ORDER BY key",
            (kind, low, low + "\U0010ffff"),
        )
        return self._problems.readable(kind, rows)

    def delete_under(self, kind: str, prefix: str) -> int:
        low = prefix.lower()
        with self._db("write") as db:
            cur = db.execute(
                "DELETE FROM modelhost_resources WHERE kind = %s AND key >= %s AND key < %s",
                (kind, low, low + "\U0010ffff"),
            )
        return cur.rowcount

    def list(self, kind: str) -> builtins.list[dict[str, Any]]:
        return [record for _, record in self.items(kind)]

    def items(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        rows = self._rows("SELECT key, data FROM modelhost_resources WHERE kind = %s", (kind,))
        return self._problems.readable_kind(kind, rows)

    # instances -------------------------------------------------------------------------------
    def add_instance(self, row: InstanceRow) -> None:
        with self._db("write") as db:
            db.execute(
                "INSERT INTO modelhost_instances (instance_id, endpoint_key, pid, port, started) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (instance_id) DO UPDATE SET endpoint_key = "
                "EXCLUDED.endpoint_key, pid = EXCLUDED.pid, port = EXCLUDED.port, started = EXCLUDED.started",
                (row.instance_id, row.endpoint_key, row.pid, row.port, row.started),
            )
            self._problems.clear("instance", row.instance_id)

    def remove_instance(self, instance_id: str) -> None:
        with self._db("write") as db:
            db.execute("DELETE FROM modelhost_instances WHERE instance_id = %s", (instance_id,))
            self._problems.clear("instance", instance_id)

    def instances(self) -> builtins.list[InstanceRow]:
        rows = self._rows("SELECT instance_id, endpoint_key, pid, port, started FROM modelhost_instances", ())
        with self._lock:
            result: builtins.list[InstanceRow] = []
            for row in rows:
                problem = instance_row_problem(tuple(row))
                if problem is None:
                    result.append(InstanceRow(*row))
                else:
                    self._problems.note("instance", str(row[0]), problem)
        return result
