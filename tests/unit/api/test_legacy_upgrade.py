"""Format-1 rows (AWS-shaped documents) become records; one that cannot be converted stays and is reported."""

from __future__ import annotations

import json
from pathlib import Path

from modelhost.api.legacy import upgrade_store
from modelhost.resources.status import EndpointStatus
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore

ROWS = Path(__file__).parents[2] / "integration" / "sagemaker" / "data" / "store_format_1.json"


def test_format_1_rows_are_upgraded_once_and_a_broken_one_is_left_and_reported(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "modelhost.db")
    store.open()
    for row in json.loads(ROWS.read_text().replace("{MODEL_DIR}", "/models/echo")):
        store.put(row["kind"], row["key"], row["data"])
    store.put("endpoint", "broken", {"EndpointName": "broken", "EndpointStatus": "InService"})
    records = Records(store)

    assert upgrade_store(records) == 3
    assert upgrade_store(records) == 0  # already records
    endpoint = records.endpoints.get("legacy")
    assert endpoint is not None and endpoint.status == EndpointStatus.IN_SERVICE
    assert endpoint.variants[0].model.container.model_data_url == "/models/echo"
    assert [t.key for t in endpoint.tags] == ["team"]
    assert [e.name for e in records.endpoints.list()] == ["legacy"]
    assert any(line.startswith("endpoint 'broken'") for line in records.problems.lines())
