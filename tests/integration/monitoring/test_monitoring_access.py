"""With access keys, the monitoring surfaces are signed like everything else: CloudWatch and CloudWatch Logs
verify SigV4 and check `cloudwatch:<Op>` / `logs:<Op>` against the key's policy; /metrics takes the key's
ApiKey as a Bearer token; /health and /ping stay open and tell only the status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.sagemaker.test_access_control import create_key
from tests.integration.server import ServerProcess

INVOKE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint*"], "Resource": "*"}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("monitoring-access-home")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> dict[str, str]:
    return create_key(server.home, "--name", "admin")


@pytest.fixture(scope="module")
def invoker(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    policy = tmp_path_factory.mktemp("policy") / "invoke.json"
    policy.write_text(json.dumps(INVOKE_ONLY))
    return create_key(server.home, "--name", "invoker", "--policy", str(policy))


def client(server: ServerProcess, service: str, key: dict[str, str] | None) -> Any:
    if key is None:
        config = Config(signature_version=UNSIGNED, retries={"max_attempts": 1})
        return boto3.client(service, endpoint_url=server.url, region_name="us-east-1", config=config)
    return boto3.client(
        service, endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"], config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def code_of(call: Any) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def test_cloudwatch_needs_a_signature_and_a_policy(
    server: ServerProcess, admin: dict[str, str], invoker: dict[str, str]
) -> None:
    assert "Metrics" in client(server, "cloudwatch", admin).list_metrics()
    assert code_of(lambda: client(server, "cloudwatch", None).list_metrics()) == "MissingAuthenticationTokenException"
    wrong = {**admin, "SecretAccessKey": "not-the-secret"}
    assert code_of(lambda: client(server, "cloudwatch", wrong).list_metrics()) == "InvalidSignatureException"
    assert code_of(lambda: client(server, "cloudwatch", invoker).list_metrics()) == "AccessDeniedException"


def test_logs_need_a_signature_and_a_policy(
    server: ServerProcess, admin: dict[str, str], invoker: dict[str, str]
) -> None:
    assert "logGroups" in client(server, "logs", admin).describe_log_groups()
    assert code_of(lambda: client(server, "logs", None).describe_log_groups()) == "MissingAuthenticationTokenException"
    assert code_of(lambda: client(server, "logs", invoker).describe_log_groups()) == "AccessDeniedException"


def test_metrics_page_takes_the_api_key_as_a_bearer_token(
    server: ServerProcess, admin: dict[str, str], invoker: dict[str, str]
) -> None:
    url = f"{server.url}/metrics"
    assert httpx.get(url, timeout=10, trust_env=False).status_code == 403
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10, trust_env=False).status_code == 400
    allowed = httpx.get(url, headers={"Authorization": f"Bearer {admin['ApiKey']}"}, timeout=10, trust_env=False)
    assert allowed.status_code == 200 and "modelhost_" in allowed.text
    denied = httpx.get(url, headers={"Authorization": f"Bearer {invoker['ApiKey']}"}, timeout=10, trust_env=False)
    assert denied.status_code == 400 and "cloudwatch:GetMetricData" in denied.text


def test_probes_stay_open_and_tell_only_the_status(server: ServerProcess, admin: dict[str, str]) -> None:
    for path in ("/health", "/ping"):
        answer = httpx.get(f"{server.url}{path}", timeout=10, trust_env=False)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}

