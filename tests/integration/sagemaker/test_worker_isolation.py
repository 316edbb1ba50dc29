"""Isolated workers, end to end: a model.py that returns its os.environ sees none of the server's secrets,
interpreter variables are refused at CreateModel, a worker's port refuses anyone but the router, and local
model data outside MODELHOST_LOCAL_DATA_ROOTS is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from modelhost.contracts.worker import ROUTER_TOKEN_HEADER
from tests.integration.server import ServerProcess, deploy, write_echo_model

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAISOLATIONTEST01",
    "AWS_SECRET_ACCESS_KEY": "isolation-aws-secret-value",
    "AWS_SESSION_TOKEN": "isolation-session-token-value",
    "MODELHOST_TEST_SECRET": "isolation-modelhost-secret-value",
    "DATABASE_PASSWORD": "isolation-database-password",
    "HF_TOKEN": "hf_isolationtokenvalue",
}
ENV_MODEL_PY = """
import json, os
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    return Output().add_as_json(dict(os.environ))
"""


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("allowed-model-data")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, allowed: Path) -> Iterator[ServerProcess]:
    env = {**SECRETS, "MODELHOST_LOCAL_DATA_ROOTS": str(allowed), "MODELHOST_WORKER_LOG_LEVEL": "DEBUG"}
    proc = ServerProcess(tmp_path_factory.mktemp("isolation-home"), env=env).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def worker_env(server: ServerProcess, allowed: Path) -> dict[str, str]:
    sm, runtime = server.clients()
    folder = write_echo_model(allowed / "env-model", model_py=ENV_MODEL_PY)
    deploy(sm, "env-dump", str(folder), environment={"MODEL_SETTING": "from-model"})
    sm.get_waiter("endpoint_in_service").wait(EndpointName="env-dump", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    body = runtime.invoke_endpoint(EndpointName="env-dump", Body=b"go")["Body"].read()
    return dict(json.loads(body))


def test_the_worker_sees_none_of_the_servers_secrets(worker_env: dict[str, str]) -> None:
    for name, value in SECRETS.items():
        assert name not in worker_env
        assert all(value not in v for v in worker_env.values()), name
    assert not [name for name in worker_env if name.startswith("AWS_")]
    # what the worker needs is there
    assert worker_env["MODEL_SETTING"] == "from-model"
    assert worker_env["MODELHOST_WORKER_LOG_LEVEL"] == "DEBUG"
    assert worker_env.get("PATH") and worker_env.get("HF_HUB_CACHE")
    assert worker_env.get("SAGEMAKER_BIND_TO_PORT", "").isdigit()


def test_a_worker_port_refuses_callers_other_than_the_router(
    server: ServerProcess, worker_env: dict[str, str]
) -> None:
    worker = f"http://127.0.0.1:{worker_env['SAGEMAKER_BIND_TO_PORT']}"
    direct = httpx.post(f"{worker}/invocations", content=b"go", timeout=10, trust_env=False)
    assert direct.status_code == 403
    assert "only modelhost's router" in direct.json()["message"]
    forged = httpx.post(
        f"{worker}/invocations", content=b"go", headers={ROUTER_TOKEN_HEADER: "guess"}, timeout=10, trust_env=False
    )
    assert forged.status_code == 403
    assert httpx.post(f"{worker}/v1/chat/completions", json={}, timeout=10, trust_env=False).status_code == 403
    assert httpx.get(f"{worker}/ping", timeout=10, trust_env=False).status_code == 200
    _, runtime = server.clients()
    assert runtime.invoke_endpoint(EndpointName="env-dump", Body=b"go")["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize("name", ["PYTHONPATH", "PYTHONWARNINGS", "LD_PRELOAD", "BROWSER", "MODELHOST_ENGINE_FACTORY"])
def test_interpreter_variables_are_refused(server: ServerProcess, allowed: Path, name: str) -> None:
    sm, _ = server.clients()
    container: dict[str, Any] = {"ModelDataUrl": str(allowed), "Environment": {name: "x"}}
    with pytest.raises(ClientError) as caught:
        sm.create_model(ModelName=f"refused-{name.lower().replace('_', '-')}", PrimaryContainer=container)
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert f"Environment: {name} cannot be set for a model" in error["Message"]


@pytest.mark.parametrize("url", ["/etc", "file:///etc/passwd", "/no/such/folder"])
def test_model_data_outside_the_allowed_roots_is_refused(server: ServerProcess, url: str) -> None:
    sm, _ = server.clients()
    with pytest.raises(ClientError) as caught:
        sm.create_model(ModelName="outside-roots", PrimaryContainer={"ModelDataUrl": url})
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "is outside the folders model data may be read from" in error["Message"]
