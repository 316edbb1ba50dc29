"""Damaged rows in the store are named and skipped; everything else keeps working."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.sagemaker.test_restart import invoke_when_ready
from tests.integration.server import ServerProcess, deploy, write_echo_model

FAST = {"Delay": 1, "MaxAttempts": 60}


def test_an_unreadable_model_and_endpoint_are_reported_and_skipped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = write_echo_model(tmp_path / "echo")
    first = ServerProcess(home).start()
    try:
        sm, _ = first.clients()
        deploy(sm, "good", str(folder))
        deploy(sm, "bad", str(folder))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="good", WaiterConfig=FAST)
        sm.get_waiter("endpoint_in_service").wait(EndpointName="bad", WaiterConfig=FAST)
    finally:
        first.stop()
    with sqlite3.connect(home / "modelhost.db") as db:
        db.execute("UPDATE resources SET data = '{not json' WHERE kind = 'model' AND key = 'bad'")
        row = db.execute("SELECT data FROM resources WHERE kind = 'endpoint' AND key = 'bad'").fetchone()
        damaged = json.loads(row[0])
        damaged["record"]["status"] = "Exploded"  # valid JSON, not a valid record
        db.execute("UPDATE resources SET data = ? WHERE kind = 'endpoint' AND key = 'bad'", (json.dumps(damaged),))

    second = ServerProcess(home).start()
    try:
        sm, runtime = second.clients()
        assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["good"]
        with pytest.raises(ClientError) as exc:
            sm.describe_model(ModelName="bad")
        assert "cannot be read" in exc.value.response["Error"]["Message"]
        assert "modelhost doctor" in exc.value.response["Error"]["Message"]
        assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["good"]
        assert invoke_when_ready(runtime, "good")["echo"] == "again"  # its instance restarts, the bad one is left
        report = httpx.get(f"{second.url}/_modelhost/health").json()
        assert report["status"] == "ok"
        assert any(line.startswith("model 'bad'") for line in report["unreadable_records"]), report
        assert any(line.startswith("endpoint 'bad'") for line in report["unreadable_records"]), report
        with pytest.raises(ClientError):  # the damaged endpoint is not silently replaced
            sm.create_endpoint(EndpointName="bad", EndpointConfigName="good")
    finally:
        second.stop()
