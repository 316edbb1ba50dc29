"""modelhost's own logs and quotas routes: open without keys; with keys, SigV4 and the caller's policy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelhost.app import ServerRoutes
from modelhost.security import actions
from modelhost.security.keys import AccessKey, KeyStore
from modelhost.settings import ServerSettings

QUOTAS = {"host": {"gpus": 0, "cpus": 2, "memory_gib": 4.0}, "strict_instance_types": False, "quotas": []}
LOGS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "logs:GetLogEvents",
            "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/Endpoints/My-Endpoint",
        }
    ],
}
INVOKE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*"}],
}


def client_for(home: Path) -> TestClient:
    folder = home / "logs" / "my-endpoint"
    folder.mkdir(parents=True)
    (folder / "endpoint.log").write_text("deployed\n")
    routes = ServerRoutes(ServerSettings(home=home))
    endpoint = SimpleNamespace(name="My-Endpoint")
    services: Any = SimpleNamespace(
        control_plane=SimpleNamespace(quota_report=lambda: QUOTAS),
        records=SimpleNamespace(
            endpoints=SimpleNamespace(get=lambda name: endpoint if name.lower() == "my-endpoint" else None)
        ),
    )
    routes.services = services
    return TestClient(Starlette(routes=routes.routes()))


def signed(key: AccessKey | None, path: str, *, secret: str | None = None, region: str = "us-east-1") -> dict[str, str]:
    """Headers of a GET of `path` on the test client's host, signed as the CLI signs."""
    if key is None:
        return {}
    request = AWSRequest(method="GET", url=f"http://testserver{path}")
    credentials = Credentials(key.access_key_id, secret or key.secret_access_key)
    SigV4Auth(credentials, "logs", region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


LOGS = "/_modelhost/endpoints/my-endpoint/logs?lines=5"


def test_without_keys_both_routes_stay_open(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    assert "deployed" in client.get(LOGS).text
    assert client.get("/_modelhost/quotas").json() == QUOTAS


def test_with_keys_unsigned_and_badly_signed_gets_are_refused_in_aws_words(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    admin = KeyStore(tmp_path).create("admin")
    for path in (
        LOGS,
        "/_modelhost/quotas",
        "/_modelhost/endpoints/no-such/logs",
        "/_modelhost/endpoints/my-endpoint/logs?lines=x",
    ):
        answer = client.get(path)
        assert answer.status_code == 403
        assert answer.json() == {
            "__type": "MissingAuthenticationTokenException",
            "message": "Missing Authentication Token",
        }
        assert "x-amzn-RequestId" in answer.headers
    wrong = client.get(LOGS, headers=signed(admin, LOGS, secret="x" * 40))
    assert (wrong.status_code, wrong.json()["__type"]) == (400, "InvalidSignatureException")
    unknown = AccessKey("AKIAUNKNOWNUNKNOWN00", "s" * 40, "ghost", "mh-x", 0.0)
    answer = client.get(LOGS, headers=signed(unknown, LOGS))
    assert (answer.status_code, answer.json()["__type"]) == (400, "UnrecognizedClientException")


def test_with_keys_an_allowed_key_reads_them(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    admin = KeyStore(tmp_path).create("admin")
    answer = client.get(LOGS, headers=signed(admin, LOGS))
    assert answer.status_code == 200 and "deployed" in answer.text
    assert client.get("/_modelhost/quotas", headers=signed(admin, "/_modelhost/quotas")).json() == QUOTAS
    # validation comes after authentication, and still answers as before
    bad = "/_modelhost/endpoints/my-endpoint/logs?lines=x"
    assert client.get(bad, headers=signed(admin, bad)).status_code == 400
    missing = "/_modelhost/endpoints/no-such/logs"
    assert client.get(missing, headers=signed(admin, missing)).status_code == 404


def test_the_log_group_arn_carries_the_endpoints_own_name_and_the_signed_region(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    store = KeyStore(tmp_path)
    store.create("admin")
    reader = store.create("reader", LOGS_ONLY)
    # asked in another case, the log group is still the endpoint's as created: the policy matches it
    lower = client.get(LOGS, headers=signed(reader, LOGS, region="eu-west-1"))
    assert lower.status_code == 200
    denied = client.get("/_modelhost/quotas", headers=signed(reader, "/_modelhost/quotas"))
    assert denied.status_code == 400
    assert denied.json()["message"] == (
        "User: arn:aws:iam::123456789012:user/reader is not authorized to perform: servicequotas:ListServiceQuotas "
        "on resource: * because no identity-based policy allows the servicequotas:ListServiceQuotas action"
    )


@pytest.mark.parametrize("path", [LOGS, "/_modelhost/quotas"])
def test_an_invoke_only_key_is_denied(tmp_path: Path, path: str) -> None:
    client = client_for(tmp_path)
    store = KeyStore(tmp_path)
    invoker = store.create("invoker", INVOKE_ONLY)
    answer = client.get(path, headers=signed(invoker, path, region="eu-west-1"))
    assert answer.status_code == 400
    body = answer.json()
    assert body["__type"] == "AccessDeniedException"
    if path == LOGS:
        assert body["message"] == (
            "User: arn:aws:iam::123456789012:user/invoker is not authorized to perform: logs:GetLogEvents on "
            "resource: arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/My-Endpoint "
            "because no identity-based policy allows the logs:GetLogEvents action"
        )
    assert not (tmp_path / "logs" / "audit.log").exists()  # reads are not audited


def test_action_names() -> None:
    assert actions.action("CreateModel") == "sagemaker:CreateModel"
    assert actions.action("logs:GetLogEvents") == "logs:GetLogEvents"
    assert not actions.is_mutating("logs:GetLogEvents")
    assert not actions.is_mutating(actions.LIST_SERVICE_QUOTAS)
    assert actions.is_mutating("CreateModel")
