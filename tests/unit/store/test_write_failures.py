"""SQLite failures outside the data (a full disk) surface as StoreUnavailable with a readable message."""

from __future__ import annotations

import pytest

from modelhost.errors import ApiError
from modelhost.store.errors import StoreError, StoreUnavailable
from modelhost.store.sqlite import AlreadyExists, SqliteStore


def fill_the_disk(store: SqliteStore) -> None:
    """Caps the database at its current size, which SQLite reports exactly as a full disk."""
    conn = store._conn  # the one connection the store writes through
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_disk_is_one_store_error_with_the_reason(store: SqliteStore) -> None:
    store.put("model", "small", {"ModelName": "small"})
    fill_the_disk(store)

    with pytest.raises(StoreUnavailable) as caught:
        store.put("model", "big", {"ModelName": "big", "padding": "x" * 200_000})
    message = str(caught.value)
    assert "cannot write the store" in message
    assert "database or disk is full" in message
    assert "free disk space" in message
    assert isinstance(caught.value, StoreError)
    assert isinstance(caught.value, ApiError) and caught.value.status == 503

    with pytest.raises(StoreUnavailable):
        store.insert("model", "other", {"ModelName": "other", "padding": "y" * 200_000})
    assert store.get("model", "small") == {"ModelName": "small"}  # what was there is still readable
    assert store.get("model", "big") is None


def test_a_name_that_is_taken_is_still_already_exists(store: SqliteStore) -> None:
    store.insert("model", "m", {"ModelName": "m"})
    with pytest.raises(AlreadyExists):
        store.insert("model", "M", {"ModelName": "M"})
