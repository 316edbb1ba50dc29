"""Opening a store never replaces or re-initialises a file that exists: damaged files raise StoreCorrupt."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.store.errors import StoreCorrupt
from modelhost.store.integrity import check_store_file
from modelhost.store.sqlite import SqliteStore


def test_a_missing_file_is_a_fresh_home(db_path: Path) -> None:
    assert check_store_file(db_path) is False
    store = SqliteStore(db_path)
    store.open()
    store.put("model", "m", {"ModelName": "m"})
    store.close()
    assert check_store_file(db_path) is True
    assert not db_path.with_name(db_path.name + ".new").exists()


def test_an_empty_file_is_refused_and_left_as_it_is(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"")
    with pytest.raises(StoreCorrupt) as caught:
        SqliteStore(db_path).open()
    message = str(caught.value)
    assert str(db_path) in message
    assert "empty (0 bytes)" in message
    assert "modelhost doctor" in message
    assert db_path.read_bytes() == b""
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["modelhost.db"]


def test_a_file_that_is_not_sqlite_is_refused_and_left_as_it_is(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    garbage = b"this is not a database\n" * 200
    db_path.write_bytes(garbage)
    with pytest.raises(StoreCorrupt, match="is not a SQLite database"):
        SqliteStore(db_path).open()
    assert db_path.read_bytes() == garbage


def test_a_database_with_damaged_pages_fails_the_integrity_check(db_path: Path) -> None:
    store = SqliteStore(db_path)
    store.open()
    for i in range(200):
        store.put("model", f"m{i}", {"ModelName": f"m{i}", "padding": "x" * 500})
    store.close()
    data = bytearray(db_path.read_bytes())
    page_bytes = int.from_bytes(data[16:18], "big")
    for page in range(2, len(data) // page_bytes):  # keep page 1 (the header), scramble every b-tree page
        start = page * page_bytes
        data[start : start + 64] = b"\xa5" * 64
    db_path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match="integrity check"):
        SqliteStore(db_path).open()
    assert db_path.read_bytes() == bytes(data)
