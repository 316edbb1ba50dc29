"""A row that cannot be decoded is skipped by list(), reported by kind and name, and refused by get()."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelhost.store.errors import UnreadableRecord
from modelhost.store.integrity import RecordProblem, inspect_store
from modelhost.store.sqlite import InstanceRow, SqliteStore
from tests.unit.store.conftest import write_raw


def endpoints(store: SqliteStore) -> list[str]:
    return sorted(str(r["EndpointName"]) for r in store.list("endpoint"))


def test_list_skips_a_bad_endpoint_row_and_reports_it(store: SqliteStore, db_path: Path) -> None:
    for name in ("alpha", "bravo", "charlie"):
        store.put("endpoint", name, {"EndpointName": name})
    write_raw(db_path, "UPDATE resources SET data = ? WHERE key = 'bravo'", '{"EndpointName": "bra')

    assert endpoints(store) == ["alpha", "charlie"]
    [problem] = store.problems()
    assert (problem.kind, problem.name) == ("endpoint", "bravo")
    assert "bad JSON" in problem.reason
    assert store.list("model") == []


def test_get_and_update_of_a_bad_row_name_it(store: SqliteStore, db_path: Path) -> None:
    store.put("endpoint", "Bravo", {"EndpointName": "Bravo"})
    write_raw(db_path, "UPDATE resources SET data = '[1, 2]' WHERE key = 'bravo'")

    with pytest.raises(UnreadableRecord) as caught:
        store.get("endpoint", "Bravo")
    assert (caught.value.kind, caught.value.name) == ("endpoint", "bravo")
    assert 'endpoint "bravo" cannot be read' in str(caught.value)
    assert isinstance(caught.value, ValueError)  # what callers that caught json's error already handle
    with pytest.raises(UnreadableRecord):
        store.update("endpoint", "bravo", lambda record: record)
    assert store.problems() == [RecordProblem("endpoint", "bravo", "JSON list, not an object")]


def test_a_warning_names_the_row_once(store: SqliteStore, db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store.put("model", "m1", {"ModelName": "m1"})
    write_raw(db_path, "UPDATE resources SET data = 'not json' WHERE key = 'm1'")
    with caplog.at_level(logging.WARNING, logger="modelhost.store.sqlite"):
        for _ in range(3):
            store.list("model")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert 'the model "m1"' in warnings[0]
    assert "modelhost doctor" in warnings[0]


def test_rewriting_or_deleting_a_bad_row_clears_the_report(store: SqliteStore, db_path: Path) -> None:
    store.put("endpoint", "a", {"EndpointName": "a"})
    store.put("endpoint", "b", {"EndpointName": "b"})
    write_raw(db_path, "UPDATE resources SET data = '' WHERE kind = 'endpoint'")
    store.list("endpoint")
    assert [p.name for p in store.problems()] == ["a", "b"]

    store.put("endpoint", "a", {"EndpointName": "a"})
    assert store.delete("endpoint", "b")
    assert store.problems() == []
    assert endpoints(store) == ["a"]


def test_bad_rows_are_reported_when_the_store_opens(db_path: Path) -> None:
    store = SqliteStore(db_path)
    store.open()
    store.put("endpoint_config", "c", {"EndpointConfigName": "c"})
    store.close()
    write_raw(db_path, "UPDATE resources SET data = '{' WHERE key = 'c'")

    reopened = SqliteStore(db_path)
    reopened.open()
    try:
        assert [(p.kind, p.name) for p in reopened.problems()] == [("endpoint_config", "c")]
    finally:
        reopened.close()


def test_a_bad_instance_row_is_skipped(store: SqliteStore, db_path: Path) -> None:
    store.add_instance(InstanceRow("i-1", "ep", 100, 9000, 1.0))
    store.add_instance(InstanceRow("i-2", "ep", 101, 9001, 1.0))
    write_raw(db_path, "UPDATE instances SET pid = 'oops' WHERE instance_id = 'i-2'")

    assert [r.instance_id for r in store.instances()] == ["i-1"]
    assert [(p.kind, p.name) for p in store.problems()] == [("instance", "i-2")]
    store.remove_instance("i-2")
    assert store.problems() == []


def test_inspection_counts_readable_records_and_lists_bad_ones(store: SqliteStore, db_path: Path) -> None:
    store.put("model", "m", {"ModelName": "m"})
    store.put("endpoint", "good", {"EndpointName": "good"})
    store.put("endpoint", "bad", {"EndpointName": "bad"})
    store.add_instance(InstanceRow("i-1", "good", 100, 9000, 1.0))
    write_raw(db_path, "UPDATE resources SET data = 'garbage' WHERE key = 'bad'")

    report = inspect_store(db_path)
    assert report.exists and report.damage is None
    assert report.records == {"model": 1, "endpoint": 1}
    assert report.instances == 1
    assert [(p.kind, p.name) for p in report.unreadable] == [("endpoint", "bad")]
