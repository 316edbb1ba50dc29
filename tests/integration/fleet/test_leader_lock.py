"""The leader lock on a real PostgreSQL: one holder at a time, free again the moment its session ends."""

from __future__ import annotations

import time

from modelhost.store.leader import PostgresLeaderLock, lock_key
from tests.integration.fleet.postgres import PostgresCluster


def test_one_holder_at_a_time_and_free_when_it_lets_go(postgres_url: str) -> None:
    first, second = PostgresLeaderLock(postgres_url), PostgresLeaderLock(postgres_url)
    assert first.try_acquire() is True
    assert first.try_acquire() is True  # holding it already
    assert second.try_acquire() is False and second.try_acquire() is False
    assert first.still_held() and not second.still_held()
    first.release()
    assert not first.still_held()
    assert second.try_acquire() is True
    assert first.try_acquire() is False
    second.release()


def test_a_holder_whose_session_is_ended_loses_it_and_another_takes_it(
    postgres: PostgresCluster, postgres_url: str
) -> None:
    holder, waiting = PostgresLeaderLock(postgres_url), PostgresLeaderLock(postgres_url)
    assert holder.try_acquire()
    started = time.monotonic()
    # what PostgreSQL does when the holder's process dies: the session ends (here by an administrator)
    postgres.execute(
        postgres.url(),
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
        (holder.key or 0) & 0xFFFFFFFF,
    )
    while not waiting.try_acquire():
        assert time.monotonic() - started < 5
        time.sleep(0.05)
    assert not holder.still_held()  # the old holder finds out at its next check
    waiting.release()


def test_an_unreachable_database_is_no_lock_not_an_error() -> None:
    from modelhost.testing import free_port

    lock = PostgresLeaderLock(f"postgresql://nobody:pw@127.0.0.1:{free_port()}/none")
    assert lock.try_acquire() is False and lock.still_held() is False
    lock.release()


def test_two_schemas_of_one_database_each_have_a_leader(postgres: PostgresCluster, postgres_url: str) -> None:
    """Two fleets, one schema each (search_path in the URL), in one database: the lock key comes from the
    database and the schema, so each fleet elects its own leader (fails with one key per database)."""
    for schema in ("fleet_a", "fleet_b"):
        postgres.execute(postgres_url, f"CREATE SCHEMA {schema}")  # names made here, never input
    a1, a2 = (PostgresLeaderLock(f"{postgres_url}?options=-csearch_path%3Dfleet_a") for _ in range(2))
    b1 = PostgresLeaderLock(f"{postgres_url}?options=-csearch_path%3Dfleet_b")
    assert a1.try_acquire() is True
    assert b1.try_acquire() is True  # fleet B's leader, while fleet A has one
    assert a2.try_acquire() is False  # still one leader per fleet
    database = postgres_url.rsplit("/", 1)[1]
    assert a1.key == lock_key(database, "fleet_a") != b1.key == lock_key(database, "fleet_b")
    for lock in (a1, a2, b1):
        lock.release()
