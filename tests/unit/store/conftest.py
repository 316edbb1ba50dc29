"""A fresh SQLite store in a temporary home, and a way to damage its rows the way a bad write would."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.store.sqlite import SqliteStore


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self, now_s: float = 1_700_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "modelhost.db"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    store = SqliteStore(db_path, now_s=clock)
    store.open()
    yield store
    store.close()


def write_raw(db_path: Path, sql: str, *params: object) -> None:
    """Writes behind the store's back (another connection), as a damaged write or a hand edit would."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute(sql, params)
    finally:
        conn.close()
