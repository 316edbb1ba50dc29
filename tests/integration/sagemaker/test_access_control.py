"""Access control against a real server: SigV4 with real boto3, API keys with the OpenAI client, policies."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, wait_status, write_echo_model

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"
INVOKE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint*", "sagemaker:Describe*"], "Resource": "*"}],
}


def create_key(home: Path, *args: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "modelhost", "keys", "create", "--json", "--home", str(home), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    key: dict[str, str] = json.loads(out.stdout)
    return key


def clients(server: ServerProcess, key_id: str, secret: str, region: str = "us-east-1") -> tuple[Any, Any]:
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region)
    config = Config(retries={"max_attempts": 1}, read_timeout=120)
    return (
        session.client("sagemaker", endpoint_url=server.url, config=config),
        session.client("sagemaker-runtime", endpoint_url=server.url, config=config),
    )


def error_of(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("access-home")
    # with keys, local model data must come from configured roots: the tests' folders live under the basetemp
    roots = str(tmp_path_factory.getbasetemp())
    process = ServerProcess(home, env={"MODELHOST_LOCAL_DATA_ROOTS": roots}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> dict[str, str]:
    return create_key(server.home, "--name", "admin")


def test_keys_take_effect_on_a_running_server(server: ServerProcess, admin: dict[str, str]) -> None:
    assert set(admin) == {"UserName", "AccessKeyId", "SecretAccessKey", "ApiKey"}
    sm, _ = clients(server, admin["AccessKeyId"], admin["SecretAccessKey"])
    time.sleep(1.0)  # the server re-reads keys.json within a second
    assert sm.list_models()["Models"] == []
    dummy, _ = server.clients()  # the dummy credentials every test used before keys existed
    assert error_of(dummy.list_models) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )


def test_unsigned_wrong_secret_and_expired(server: ServerProcess, admin: dict[str, str]) -> None:
    unsigned = httpx.post(
        server.url + "/",
        headers={"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"},
        content=b"{}",
    )
    assert unsigned.status_code == 403
    expected = {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}
    assert unsigned.json() == expected
    wrong, wrong_runtime = clients(server, admin["AccessKeyId"], "x" * 40)
    code, message = error_of(wrong.list_models)
    assert code == "InvalidSignatureException"
    assert message.startswith("The request signature we calculated does not match the signature you provided.")
    code, _ = error_of(lambda: wrong_runtime.invoke_endpoint(EndpointName="nope", Body=b"{}"))
    assert code == "InvalidSignatureException"
    sm, _ = clients(server, admin["AccessKeyId"], admin["SecretAccessKey"])
    with mock.patch("botocore.auth.get_current_datetime", return_value=datetime(2001, 1, 1)):
        code, message = error_of(sm.list_models)
    assert code == "InvalidSignatureException"
    assert message.startswith("Signature expired: 20010101T000000Z is now earlier than ")
    assert message.endswith(" - 5 min.)")


def test_region_comes_from_the_verified_scope(server: ServerProcess, admin: dict[str, str]) -> None:
    sm, _ = clients(server, admin["AccessKeyId"], admin["SecretAccessKey"], region="eu-west-1")
    name = f"m-{uuid.uuid4().hex[:8]}"
    arn = sm.create_model(ModelName=name, PrimaryContainer={"Image": IMAGE})["ModelArn"]
    assert arn.startswith("arn:aws:sagemaker:eu-west-1:")
    audit = [json.loads(line) for line in (server.home / "logs" / "audit.log").read_text().splitlines()]
    assert {"operation": "CreateModel", "resource": arn, "decision": "allowed"}.items() <= audit[-1].items()
    assert audit[-1]["identity"].endswith(":user/admin")


def test_invoke_only_key(server: ServerProcess, admin: dict[str, str], tmp_path: Path) -> None:
    policy = tmp_path / "invoke-only.json"
    policy.write_text(json.dumps(INVOKE_ONLY))
    limited = create_key(server.home, "--name", "invoker", "--policy", str(policy))
    time.sleep(1.0)
    sm, _ = clients(server, admin["AccessKeyId"], admin["SecretAccessKey"])
    name = f"ac-{uuid.uuid4().hex[:8]}"
    deploy(sm, name, str(write_echo_model(tmp_path / "echo")))
    assert wait_status(sm, name)["EndpointStatus"] == "InService"
    limited_sm, limited_runtime = clients(server, limited["AccessKeyId"], limited["SecretAccessKey"])
    answer = limited_runtime.invoke_endpoint(EndpointName=name, Body=b'{"x": 1}', ContentType="application/json")
    assert json.loads(answer["Body"].read())["echo"] == '{"x": 1}'
    code, message = error_of(lambda: limited_sm.create_model(ModelName="nope", PrimaryContainer={"Image": IMAGE}))
    assert code == "AccessDeniedException"
    assert message == (
        "User: arn:aws:iam::123456789012:user/invoker is not authorized to perform: sagemaker:CreateModel on "
        "resource: arn:aws:sagemaker:us-east-1:123456789012:model/nope because no identity-based policy allows "
        "the sagemaker:CreateModel action"
    )
    audit = (server.home / "logs" / "audit.log").read_text().splitlines()
    assert json.loads(audit[-1])["decision"] == "denied"

    # the OpenAI routes: the same identity by API key
    good = openai.OpenAI(base_url=server.url + "/v1", api_key=limited["ApiKey"], max_retries=0)
    assert name in [m.id for m in good.models.list().data]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="mh-wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):  # authenticated and allowed: the model simply does not exist
        good.chat.completions.create(model="no-such-endpoint", messages=[{"role": "user", "content": "hi"}])
    sm.delete_endpoint(EndpointName=name)


def test_presigned_runtime_url(server: ServerProcess, admin: dict[str, str]) -> None:
    _, runtime = clients(server, admin["AccessKeyId"], admin["SecretAccessKey"])
    url = runtime.generate_presigned_url("invoke_endpoint", Params={"EndpointName": "nope", "Body": b""})
    answer = httpx.post(url)
    assert answer.headers.get("x-amzn-errortype") == "ValidationError"  # past authentication: no such endpoint
    late = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    with mock.patch("botocore.auth.get_current_datetime", return_value=late):
        old = runtime.generate_presigned_url("invoke_endpoint", Params={"EndpointName": "nope", "Body": b""})
    assert httpx.post(old).headers.get("x-amzn-errortype") == "InvalidSignatureException"


def test_with_keys_local_model_data_needs_configured_roots(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = create_key(home, "--name", "admin")
    server = ServerProcess(home, env={"MODELHOST_LOCAL_DATA_ROOTS": ""}).start()
    try:
        sm, _ = clients(server, key["AccessKeyId"], key["SecretAccessKey"])
        folder = write_echo_model(tmp_path / "echo")
        code, message = error_of(
            lambda: sm.create_model(ModelName="local", PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(folder)})
        )
        assert code == "ValidationException"
        assert "local model data is not allowed on a server with access keys" in message
        assert "MODELHOST_LOCAL_DATA_ROOTS" in message
    finally:
        server.stop()


def test_with_keys_the_open_health_route_names_only_the_status(server: ServerProcess, admin: dict[str, str]) -> None:
    assert httpx.get(f"{server.url}/_modelhost/health").json() == {"status": "ok"}


def test_with_keys_the_logs_and_quotas_routes_need_a_signature_and_a_policy(
    server: ServerProcess, admin: dict[str, str], tmp_path: Path
) -> None:
    import os

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    sm, _ = clients(server, admin["AccessKeyId"], admin["SecretAccessKey"])
    name = f"logs-{uuid.uuid4().hex[:8]}"
    deploy(sm, name, str(write_echo_model(tmp_path / "echo")))
    assert wait_status(sm, name)["EndpointStatus"] == "InService"
    logs_url = f"{server.url}/_modelhost/endpoints/{name}/logs?lines=50"
    quotas_url = f"{server.url}/_modelhost/quotas"

    def signed_get(url: str, key: dict[str, str]) -> httpx.Response:
        request = AWSRequest(method="GET", url=url)
        SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "logs", "us-east-1").add_auth(request)
        return httpx.get(url, headers=dict(request.headers.items()))

    for url in (logs_url, quotas_url):
        unsigned = httpx.get(url)
        assert unsigned.status_code == 403
        assert unsigned.json() == {
            "__type": "MissingAuthenticationTokenException",
            "message": "Missing Authentication Token",
        }
        allowed = signed_get(url, admin)
        assert allowed.status_code == 200, allowed.text
    assert "==> endpoint.log <==" in signed_get(logs_url, admin).text
    assert "host" in signed_get(quotas_url, admin).json()

    policy = tmp_path / "invoke.json"
    policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*"}],
            }
        )
    )
    invoker = create_key(server.home, "--name", "only-invoke", "--policy", str(policy))
    time.sleep(1.0)
    denied = signed_get(logs_url, invoker)
    assert denied.status_code == 400
    assert denied.json()["__type"] == "AccessDeniedException"
    assert (
        "logs:GetLogEvents on resource: arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/"
        in (denied.json()["message"])
    )
    assert signed_get(quotas_url, invoker).json()["__type"] == "AccessDeniedException"

    # the CLI signs these GETs with the key in its environment
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELHOST_"))}
    env = {
        **base_env,
        "HOME": str(tmp_path),
        "MODELHOST_URL": server.url,
        "MODELHOST_ACCESS_KEY_ID": admin["AccessKeyId"],
        "MODELHOST_SECRET_ACCESS_KEY": admin["SecretAccessKey"],
    }
    cli = [sys.executable, "-m", "modelhost"]
    out = subprocess.run([*cli, "logs", name], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "==> endpoint.log <==" in out.stdout
    out = subprocess.run([*cli, "quotas"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("host: "), out.stderr
    without_key = {**base_env, "HOME": str(tmp_path), "MODELHOST_URL": server.url}
    out = subprocess.run([*cli, "logs", name], env=without_key, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == "error: UnrecognizedClientException: The security token included in the request is invalid."
    )
    limited = {
        **without_key,
        "MODELHOST_ACCESS_KEY_ID": invoker["AccessKeyId"],
        "MODELHOST_SECRET_ACCESS_KEY": invoker["SecretAccessKey"],
    }
    out = subprocess.run([*cli, "logs", name], env=limited, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.startswith("error: AccessDeniedException: User: "), out.stderr
    sm.delete_endpoint(EndpointName=name)


def test_with_keys_a_local_model_id_outside_the_roots_is_refused(
    server: ServerProcess, admin: dict[str, str], tmp_path: Path
) -> None:
    import tarfile

    sm, _ = clients(server, admin["AccessKeyId"], admin["SecretAccessKey"])
    # in the model's Environment: refused by CreateModel, from the text alone
    code, message = error_of(
        lambda: sm.create_model(
            ModelName=f"m-{uuid.uuid4().hex[:8]}",
            PrimaryContainer={"Image": IMAGE, "Environment": {"HF_MODEL_ID": "/root/secret-model"}},
        )
    )
    assert code == "ValidationException"
    assert message.startswith(
        "PrimaryContainer.Environment: HF_MODEL_ID=/root/secret-model: /root/secret-model is outside the folders "
        "model data may be read from (MODELHOST_LOCAL_DATA_ROOTS="
    )
    assert message.endswith("register them with `modelhost models add MODEL_ID PATH` and name that id")
    hub_id = f"m-{uuid.uuid4().hex[:8]}"  # a Hub-style id is no local path
    sm.create_model(ModelName=hub_id, PrimaryContainer={"Image": IMAGE, "Environment": {"HF_MODEL_ID": "org/name"}})

    # in serving.properties inside the archive: the deployment fails before a worker reads it
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "serving.properties").write_text("engine=Python\noption.model_id=/etc\n")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="model")
    name = f"mid-{uuid.uuid4().hex[:8]}"
    deploy(sm, name, str(archive))
    desc = wait_status(sm, name)
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith(
        "load failed: serving.properties option.model_id=/etc: /etc is outside the folders model data may be read from"
    )
    sm.delete_endpoint(EndpointName=name)
