"""Which store a server opens: SQLite in its home, or the PostgreSQL database MODELHOST_STORE_URL names.

SQLite keeps rolling backups in HOME/backups (store/backups.py); a PostgreSQL store is backed up with the
database's own tools (pg_dump), see docs/fleet.md.
"""

from __future__ import annotations

from modelhost.settings import ServerSettings
from modelhost.store.base import Store
from modelhost.store.leader import LeaderLock, PostgresLeaderLock, SoloLeaderLock
from modelhost.store.postgres import PostgresStore
from modelhost.store.sqlite import SqliteStore


def open_store(settings: ServerSettings) -> Store:
    """The opened store: StoreUrlInvalid for a bad URL, StoreUnavailable when the database cannot be reached,
    StoreCorrupt when the SQLite file is damaged."""
    if settings.store_url:
        shared = PostgresStore(settings.store_url)
        shared.open()
        return shared
    local = SqliteStore(settings.db_path)
    local.open()
    local.start_backups()  # HOME/backups/store-<UTC stamp>.db now and every 10 minutes; close() stops it
    return local


def leader_lock_for(store: Store) -> LeaderLock:
    """The lock that makes one server of `store` its leader: PostgreSQL's advisory lock for a shared store;
    a SQLite store's server always leads (the home's lock already keeps every other server out)."""
    if isinstance(store, PostgresStore):
        return PostgresLeaderLock(store.url)
    return SoloLeaderLock()


def check_store(settings: ServerSettings) -> str | None:
    """Before a server starts: for a PostgreSQL store, that the URL is valid and the database answers (raising
    StoreUrlInvalid / StoreUnavailable with one line); returns the store's location for the start-up line."""
    if not settings.store_url:
        return None
    store = PostgresStore(settings.store_url)
    store.open()
    store.close()
    return store.location
