"""The guide's walkthrough with the real SmolLM2-135M-Instruct model: GGUF registered under its id,
a DJL model folder whose model.py loads it with from_pretrained(model_id), deployed and invoked with boto3."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess, deploy

ROOT = Path(__file__).resolve().parents[3]
MODEL_FOLDER = ROOT / "examples" / "walkthrough" / "model"
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

pytestmark = pytest.mark.slow


def test_guide_walkthrough_with_smollm2(server: ServerProcess, smollm2_registered: str, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in MODEL_FOLDER.iterdir():
            tar.add(path, arcname=path.name)
    deploy(sm, "smollm2", archive.as_uri(), instance_type="ml.g5.24xlarge")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="smollm2", WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    response = runtime.invoke_endpoint(
        EndpointName="smollm2",
        ContentType="application/json",
        Body=json.dumps({"text": "How do I write a professional email?", "text_length": 40}),
    )
    answer: Any = json.loads(response["Body"].read())["outputs"][0]["generated_text"]
    assert isinstance(answer, str) and len(answer.split()) >= 10
    assert sum(c.isalpha() for c in answer) > len(answer) / 2  # words, not noise
    logs = httpx.get(f"{server.url}/_modelhost/endpoints/smollm2/logs").text
    assert "asks for 4 GPU(s) and this host has 0: running the instance on CPU" in logs
    assert "accelerate is already installed" in logs
    sm.delete_endpoint(EndpointName="smollm2")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="smollm2", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
