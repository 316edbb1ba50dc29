"""A damaged HOME/metrics.db never keeps the server from starting: it is moved aside and a new one opened."""

from __future__ import annotations

from pathlib import Path

from modelhost.monitoring.service import open_metric_store


def test_a_damaged_metric_store_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "metrics.db"
    path.write_bytes(b"this is not an SQLite database, not even close" * 100)
    store = open_metric_store(path)
    try:
        assert list(store.list_metrics(0.0)) == []  # the new, empty store answers
    finally:
        store.close()
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith("metrics.db.unreadable-")]
    assert len(aside) == 1 and path.exists()
