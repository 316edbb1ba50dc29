"""The Store contract (store/base.py), run against SQLite in a home and PostgreSQL in a real cluster alike."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.store.base import AlreadyExists, InstanceRow, Store
from modelhost.store.errors import StoreUnavailable, UnreadableRecord
from modelhost.store.postgres import PostgresStore
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore
from tests.integration.fleet.postgres import PostgresCluster

RawWrite = Callable[[str, str, str], None]  # (kind, key, data) written behind the store's back


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, RawWrite]]:
    store: Store
    if request.param == "sqlite":
        path = tmp_path / "home" / "modelhost.db"
        store = SqliteStore(path)
        store.open()

        def raw(kind: str, key: str, data: str) -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("INSERT OR REPLACE INTO resources VALUES (?, ?, ?)", (kind, key, data))
            conn.close()
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.new_database()
        store = PostgresStore(url)
        store.open()

        def raw(kind: str, key: str, data: str) -> None:
            cluster.execute(url, "INSERT INTO modelhost_resources VALUES (%s, %s, %s) ON CONFLICT (kind, key) "
                            "DO UPDATE SET data = EXCLUDED.data", kind, key, data)  # fmt: skip
    yield store, raw
    store.close()


@pytest.fixture
def store(backend: tuple[Store, RawWrite]) -> Store:
    return backend[0]


def test_names_are_case_insensitive_and_taken_names_are_already_exists(store: Store) -> None:
    store.insert("model", "My-Model", {"n": 1})
    assert store.get("model", "my-model") == {"n": 1}
    with pytest.raises(AlreadyExists):
        store.insert("model", "MY-MODEL", {"n": 2})
    assert store.get("model", "My-Model") == {"n": 1}
    assert store.get("endpoint", "my-model") is None  # kinds do not share names


def test_put_replaces_and_delete_says_whether_there_was_a_record(store: Store) -> None:
    store.put("model", "a", {"v": 1})
    store.put("model", "A", {"v": 2})
    assert store.items("model") == [("a", {"v": 2})]
    assert store.delete("model", "A") is True
    assert store.delete("model", "a") is False
    assert store.get("model", "a") is None


def test_update_reads_changes_and_writes_in_one_step(store: Store) -> None:
    store.put("endpoint", "e", {"count": 1})
    assert store.update("endpoint", "E", lambda r: {**r, "count": r["count"] + 1}) == {"count": 2}
    assert store.update("endpoint", "e", lambda r: None) == {"count": 2}  # None: left as it is
    assert store.update("endpoint", "missing", lambda r: {"x": 1}) is None
    assert store.get("endpoint", "e") == {"count": 2}


def test_a_change_that_raises_changes_nothing(store: Store) -> None:
    store.put("endpoint", "e", {"count": 1})

    def fail(record: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        store.update("endpoint", "e", fail)
    assert store.get("endpoint", "e") == {"count": 1}
    store.put("endpoint", "f", {"count": 5})  # the store goes on working
    assert store.get("endpoint", "f") == {"count": 5}


def test_concurrent_updates_from_threads_lose_nothing(store: Store) -> None:
    store.put("endpoint", "counter", {"n": 0})

    def bump() -> None:
        for _ in range(50):
            store.update("endpoint", "counter", lambda r: {"n": r["n"] + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("endpoint", "counter") == {"n": 200}


def test_put_many_and_prefix_reads_and_deletes(store: Store) -> None:
    store.put_many("transform_object", [(f"Job/{i:03d}", {"i": i}) for i in range(5)])
    store.put_many("transform_object", [("jobs/000", {"i": 99}), ("jo", {"i": -1})])
    under = store.items_under("transform_object", "JOB/")
    assert under == [(f"job/{i:03d}", {"i": i}) for i in range(5)]  # in name order, prefix exact
    assert store.delete_under("transform_object", "job/") == 5
    assert sorted(k for k, _ in store.items("transform_object")) == ["jo", "jobs/000"]


def test_unreadable_rows_are_skipped_reported_and_refused(backend: tuple[Store, RawWrite]) -> None:
    store, raw = backend
    store.put("endpoint", "good", {"ok": True})
    raw("endpoint", "bad", "{not json")
    assert store.list("endpoint") == [{"ok": True}]
    assert [(p.kind, p.name) for p in store.problems()] == [("endpoint", "bad")]
    with pytest.raises(UnreadableRecord, match="bad"):
        store.get("endpoint", "bad")
    with pytest.raises(UnreadableRecord):
        store.update("endpoint", "bad", lambda r: r)
    store.put("endpoint", "bad", {"ok": "again"})  # rewriting it clears the report
    assert store.problems() == []


def test_instance_rows(store: Store) -> None:
    store.add_instance(InstanceRow("i-1", "ep", 100, 9000, 1.5))
    store.add_instance(InstanceRow("i-2", "ep", 101, 9001, 2.5))
    store.add_instance(InstanceRow("i-1", "ep", 102, 9002, 3.5))  # the same id again replaces it
    store.remove_instance("i-2")
    assert store.instances() == [InstanceRow("i-1", "ep", 102, 9002, 3.5)]


def test_typed_records_round_trip(store: Store) -> None:
    from modelhost.controller.shared_routes import PublishedRoute, route_table
    from modelhost.router.table import EndpointRoute, InstanceRoute, VariantRoute

    route = EndpointRoute("Ep", (VariantRoute("AllTraffic", 1.0, (InstanceRoute("i-1", "http://127.0.0.1:1", "t"),)),),
                          "/aws/sagemaker/Endpoints/Ep")  # fmt: skip
    routes = route_table(Records(store))
    routes.put("Ep", PublishedRoute("a:1 (pid 1)", route))
    assert routes.get("ep") == PublishedRoute("a:1 (pid 1)", route)


# PostgreSQL only: what several servers on one database need ------------------------------------------------
def test_two_servers_stores_update_one_row_without_losing_a_write(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url), PostgresStore(postgres_url)]
    for s in stores:
        s.open()  # two opens create the tables once
    stores[0].put("endpoint", "counter", {"n": 0})

    def bump(store: Store) -> None:
        for _ in range(100):
            store.update("endpoint", "counter", lambda r: {"n": r["n"] + 1})

    threads = [threading.Thread(target=bump, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[1].get("endpoint", "counter") == {"n": 200}
    stores[1].insert("model", "x", {})
    with pytest.raises(AlreadyExists):
        stores[0].insert("model", "X", {})
    for s in stores:
        s.close()


def test_put_many_is_all_or_nothing(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store.open()
    with pytest.raises(StoreUnavailable):
        store.put_many("transform_object", [("job/1", {"i": 1}), ("job/\x00", {"i": 2})])  # PostgreSQL refuses NUL
    assert store.items("transform_object") == []
    store.close()


def test_a_wrong_password_is_one_error_without_the_password(postgres: PostgresCluster) -> None:
    wrong = postgres.url().replace(postgres.password, "wrong-pw-1234")
    with pytest.raises(StoreUnavailable) as caught:
        PostgresStore(wrong).open()
    message = str(caught.value)
    assert "password authentication failed" in message and "wrong-pw-1234" not in message and "***" in message


def test_a_database_that_goes_away_is_store_unavailable_and_comes_back() -> None:
    from tests.integration.fleet.conftest import start_cluster

    cluster = start_cluster()  # its own: this test stops it
    try:
        url = cluster.url()
        store = PostgresStore(url, retry_after_s=0.5)
        store.open()
        store.put("model", "m", {"v": 1})
        cluster.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            store.get("model", "m")
        with pytest.raises(StoreUnavailable):
            store.get("model", "m")  # fails fast while the database is away, no connect timeout each time
        assert time.monotonic() - started < 3
        assert caught.value.status == 503 and caught.value.code == "ServiceUnavailable"
        assert cluster.password not in str(caught.value) and "***" in str(caught.value)
        cluster.start()
        time.sleep(0.6)
        assert store.get("model", "m") == {"v": 1}
        cluster.stop()  # a restart between two calls (maintenance, a failover): the next read just works
        cluster.start()
        assert store.get("model", "m") == {"v": 1} and store.list("model") == [{"v": 1}]
        store.close()
    finally:
        cluster.remove()


def test_a_cut_connection_is_given_up_by_the_server_too(postgres_url: str) -> None:
    """The server side of every store and lock connection gives up on data left unacknowledged after 15 s
    (tcp_user_timeout), so a cut-off leader's lock does not outlive the cut by the kernel's ~15 min of
    retransmissions; keepalives as before (fails without tcp_user_timeout in the session settings)."""
    from modelhost.store.leader import PostgresLeaderLock

    store = PostgresStore(postgres_url)
    store.open()
    try:
        settings = {name: store._rows(f"SHOW {name}", ())[0][0] for name in  # type: ignore[arg-type]
                    ("tcp_user_timeout", "tcp_keepalives_idle", "tcp_keepalives_count")}  # fmt: skip
    finally:
        store.close()
    assert settings == {"tcp_user_timeout": "15000", "tcp_keepalives_idle": "5", "tcp_keepalives_count": "3"}
    lock = PostgresLeaderLock(postgres_url)
    assert lock.try_acquire()
    assert lock._conn is not None and lock._conn.execute("SHOW tcp_user_timeout").fetchone() == ("15000",)
    lock.release()
