"""The leader lock: which server of a store runs the control loop (reconciler, jobs, async inference, scaling).

A SQLite store has one server (the home's flock, home.py), so that server always leads (`SoloLeaderLock`).
A PostgreSQL store is shared: the leader is the server holding a session-level advisory lock
(`pg_try_advisory_lock`) on a connection of its own. The lock lives exactly as long as that connection: when
the leader's process dies (kill -9 included) the kernel closes its socket, PostgreSQL ends the session at once and
the lock is free for the next follower's try. A leader cut off by the network loses it once PostgreSQL's
keepalives give up on the session (about 11 s, set by store/postgres.py's connection defaults), and notices
itself sooner, when `still_held` fails.

Advisory locks belong to a database, not a schema, so the key is derived from the database and the schema the
store's tables live in (`current_database()`, `current_schema()`): fleets kept in two schemas of one database
(`?options=-csearch_path%3Dfleet_a`) each have their own leader.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from typing import Any, Protocol

from modelhost.store.errors import StoreUnavailable
from modelhost.store.postgres import connect, conninfo
from modelhost.store.urls import redact

try:
    import psycopg
except ImportError:  # the optional extra; conninfo() says what to install before this module needs it
    psycopg = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

RELEASE_WAIT_S = 2.0  # at shutdown, how long release waits for a check that hangs on a cut-off network
LEADER_LOCK_KEY = 0x6D6F64656C6C6472  # "modelldr" in ASCII: mixed with the database and schema (`lock_key`)


def lock_key(database: str, schema: str) -> int:
    """The advisory lock's signed bigint key for the store in `schema` of `database`."""
    digest = hashlib.blake2b(f"{database}\0{schema}".encode(), digest_size=8, key=LEADER_LOCK_KEY.to_bytes(8)).digest()
    return int.from_bytes(digest, "big", signed=True)


class LeaderLock(Protocol):
    """One try at leadership at a time; every call is short and blocking (run it in a thread)."""

    def try_acquire(self) -> bool:
        """True when this server holds the lock now (it took it, or already held it); False when another
        server holds it or the database cannot be reached."""
        ...

    def still_held(self) -> bool:
        """Whether the lock taken by `try_acquire` is still this server's (False once its connection is gone)."""
        ...

    def release(self) -> None:
        """Gives the lock up (closing its connection); safe to call when not held."""
        ...


class SoloLeaderLock:
    """A store only this server can open (SQLite in its home): always the leader."""

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        return None


class PostgresLeaderLock:
    """The session advisory lock on a dedicated connection to the store's database: `key`, else `lock_key` of the
    database and schema that connection lands in."""

    def __init__(self, url: str, key: int | None = None) -> None:
        self._url = url
        self._info = conninfo(url)
        self._key = key
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._held:
                return self._check()
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = connect(self._info, self._url, "connect to")
                if self._key is None:
                    where = self._conn.execute("SELECT current_database(), current_schema()").fetchone()
                    assert where is not None
                    self._key = lock_key(str(where[0]), str(where[1]))
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            except (StoreUnavailable, psycopg.Error) as exc:
                log.debug("leader lock: no try possible on %s (%s)", redact(self._url), type(exc).__name__)
                self._close()
                return False
            self._held = bool(row and row[0])
            return self._held

    @property
    def key(self) -> int | None:
        """The advisory lock's key (None until the first try has connected)."""
        return self._key

    def still_held(self) -> bool:
        with self._lock:
            return self._held and self._check()

    def _check(self) -> bool:
        """One round trip on the lock's connection: a session that answers still holds its session locks."""
        try:
            assert self._conn is not None
            self._conn.execute("SELECT 1").fetchone()
            return True
        except psycopg.Error:
            self._close()
            return False

    def release(self) -> None:
        if not self._lock.acquire(timeout=RELEASE_WAIT_S):
            log.warning("leader lock: a check still hangs on its connection; the lock ends with this process")
            return
        try:
            if self._held and self._conn is not None:
                with contextlib.suppress(psycopg.Error):  # at once, not when the server notices the closed socket
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            self._close()
        finally:
            self._lock.release()

    def _close(self) -> None:
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()  # the session ends, and its advisory locks with it
            self._conn = None
