"""A data directory written by modelhost before typed records (format 1) comes back whole after an upgrade."""

from __future__ import annotations

import json
from pathlib import Path

from modelhost.store.sqlite import SqliteStore
from tests.integration.sagemaker.test_restart import invoke_when_ready
from tests.integration.server import ServerProcess, write_echo_model

ROWS = Path(__file__).parent / "data" / "store_format_1.json"  # written by the server at commit c873944


def test_a_format_1_store_is_upgraded_and_its_endpoint_comes_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = write_echo_model(tmp_path / "echo")
    store = SqliteStore(home / "modelhost.db")
    store.open()
    for row in json.loads(ROWS.read_text().replace("{MODEL_DIR}", str(folder))):
        store.put(row["kind"], row["key"], row["data"])
    store.close()

    server = ServerProcess(home).start()
    try:
        sm, runtime = server.clients()
        sm.get_waiter("endpoint_in_service").wait(EndpointName="legacy", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        described = sm.describe_endpoint(EndpointName="legacy")
        variant = described["ProductionVariants"][0]
        assert (variant["DesiredWeight"], variant["CurrentInstanceCount"]) == (0.5, 1)
        assert sm.list_tags(ResourceArn=described["EndpointArn"])["Tags"] == [{"Key": "team", "Value": "nlp"}]
        model = sm.describe_model(ModelName="legacy")
        assert model["PrimaryContainer"]["ModelDataUrl"] == str(folder)
        config = sm.describe_endpoint_config(EndpointConfigName="legacy")
        assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
        body = invoke_when_ready(runtime, "legacy")  # its instance is restarting, as after any restart
        assert body["echo"] == "again"
        assert "upgraded 3 stored record(s) from format 1" in server.log_text()
    finally:
        server.stop()
