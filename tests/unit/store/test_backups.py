"""Rolling backups with SQLite's backup API, pruning to the newest N, and restoring one over a damaged store."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from modelhost.store.backups import backups_dir_for, list_backups, resolve_backup, restore_backup
from modelhost.store.errors import StoreCorrupt
from modelhost.store.integrity import check_store_file
from modelhost.store.sqlite import SqliteStore
from tests.unit.store.conftest import FakeClock


def models_in(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in conn.execute("SELECT key FROM resources WHERE kind = 'model'"))
    finally:
        conn.close()


def test_a_backup_is_a_complete_database_named_by_its_time(store: SqliteStore, db_path: Path) -> None:
    store.put("model", "m1", {"ModelName": "m1"})
    path = store.backup_now()

    assert path is not None
    assert path.parent == db_path.parent / "backups"
    assert path.name == "store-20231114T221320.db"  # the fake clock's 1_700_000_000 s, in UTC
    assert check_store_file(path)
    assert models_in(path) == ["m1"]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no -wal, no partial file


def test_only_the_newest_backups_are_kept(db_path: Path, clock: FakeClock) -> None:
    store = SqliteStore(db_path, now_s=clock, backups_kept=3)
    store.open()
    try:
        for i in range(5):
            store.put("model", f"m{i}", {"ModelName": f"m{i}"})
            store.backup_now()
            clock.now_s += 600
    finally:
        store.close()
    backups = list_backups(backups_dir_for(db_path))
    assert len(backups) == 3
    assert models_in(backups[0].path) == ["m0", "m1", "m2", "m3", "m4"]  # newest first
    assert models_in(backups[-1].path) == ["m0", "m1", "m2"]


def test_a_failed_backup_warns_and_the_store_goes_on(
    db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backups folder should be")
    store = SqliteStore(db_path, backups_dir=blocker)
    store.open()
    try:
        with caplog.at_level(logging.WARNING, logger="modelhost.store.sqlite"):
            assert store.backup_now() is None
        assert any("backup into" in r.getMessage() for r in caplog.records)
        store.put("model", "m", {"ModelName": "m"})
        assert store.get("model", "m") == {"ModelName": "m"}
    finally:
        store.close()


def test_start_backups_writes_one_at_once_and_close_stops_it(db_path: Path) -> None:
    store = SqliteStore(db_path)
    store.open()
    store.put("model", "m", {"ModelName": "m"})
    store.start_backups(interval_s=3600)
    store.close()  # joins the thread, which wrote its first backup before waiting
    [backup] = list_backups(backups_dir_for(db_path))
    assert models_in(backup.path) == ["m"]


def test_restore_keeps_the_damaged_file_aside(store: SqliteStore, db_path: Path, clock: FakeClock) -> None:
    store.put("model", "m1", {"ModelName": "m1"})
    backup = store.backup_now()
    assert backup is not None
    store.close()
    db_path.write_bytes(b"\x00" * 4096)
    db_path.with_name(db_path.name + "-wal").write_bytes(b"stale wal")

    aside = restore_backup(db_path, resolve_backup(backups_dir_for(db_path), None), clock.now_s)

    assert aside == db_path.with_name("modelhost.db.corrupt-20231114T221320")
    assert aside.read_bytes() == b"\x00" * 4096
    assert aside.with_name(aside.name + "-wal").read_bytes() == b"stale wal"
    assert not db_path.with_name(db_path.name + "-wal").exists()
    restored = SqliteStore(db_path)
    restored.open()
    try:
        assert restored.get("model", "m1") == {"ModelName": "m1"}
    finally:
        restored.close()


def test_a_damaged_backup_is_not_restored(store: SqliteStore, db_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "store-20240101T000000.db"
    bad.write_bytes(b"")
    with pytest.raises(StoreCorrupt, match="pick another backup"):
        restore_backup(db_path, bad, 0.0)
    assert check_store_file(db_path)  # the store was not touched


def test_a_backup_is_found_by_name_or_path(db_path: Path, tmp_path: Path) -> None:
    folder = backups_dir_for(db_path)
    with pytest.raises(FileNotFoundError, match="no backup"):
        resolve_backup(folder, None)
    folder.mkdir(parents=True)
    named = folder / "store-20240101T000000.db"
    named.write_bytes(b"x")
    assert resolve_backup(folder, named.name) == named
    assert resolve_backup(folder, str(named)) == named
    with pytest.raises(FileNotFoundError, match="no backup named nope"):
        resolve_backup(folder, "nope")
