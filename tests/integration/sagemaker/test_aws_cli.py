"""The real aws cli against a server with access keys: SigV4 as the CLI signs, AWS's error codes in its stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sagemaker.test_access_control import INVOKE_ONLY, clients, create_key
from tests.integration.server import ServerProcess, deploy, wait_status, write_echo_model

pytest.importorskip("awscli", reason="the aws cli comes with the test extra (pip install -e .[test])")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("aws-cli-home")
    roots = str(tmp_path_factory.getbasetemp())  # with keys, local model data needs configured roots
    process = ServerProcess(home, env={"MODELHOST_LOCAL_DATA_ROOTS": roots}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> dict[str, str]:
    key = create_key(server.home, "--name", "admin")
    time.sleep(1.0)  # the server re-reads keys.json within a second
    return key


@pytest.fixture(scope="module")
def aws_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aws-cli-user")  # empty: no ~/.aws of this machine


def aws(server: ServerProcess, home: Path, *args: str, key: tuple[str, str] | None) -> subprocess.CompletedProcess[str]:
    """`aws ARGS --endpoint-url SERVER` with its own empty HOME and config files and only the given key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in _PROXIES}
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    if key is not None:
        env.update(AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1])
    command = [sys.executable, "-m", "awscli", *args, "--endpoint-url", server.url, "--output", "json"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=home)


_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def test_list_endpoints_with_the_right_key(server: ServerProcess, admin: dict[str, str], aws_home: Path) -> None:
    done = aws(server, aws_home, "sagemaker", "list-endpoints", key=(admin["AccessKeyId"], admin["SecretAccessKey"]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Endpoints"] == []


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong secret", "InvalidSignatureException"),
        ("unknown key", "UnrecognizedClientException"),
        ("no credentials", "MissingAuthenticationTokenException"),
    ],
)
def test_refusals_carry_awss_codes(
    server: ServerProcess, admin: dict[str, str], aws_home: Path, case: str, code: str
) -> None:
    if case == "wrong secret":
        done = aws(server, aws_home, "sagemaker", "list-endpoints", key=(admin["AccessKeyId"], "x" * 40))
    elif case == "unknown key":
        done = aws(server, aws_home, "sagemaker", "list-endpoints", key=("AKIAUNKNOWN000000000", "y" * 40))
    else:
        done = aws(server, aws_home, "sagemaker", "list-endpoints", "--no-sign-request", key=None)
    assert done.returncode != 0
    assert f"An error occurred ({code}) when calling the ListEndpoints operation" in done.stderr, done.stderr


def test_invoke_endpoint_with_an_invoke_only_key(
    server: ServerProcess, admin: dict[str, str], aws_home: Path, tmp_path: Path
) -> None:
    sm, _ = clients(server, admin["AccessKeyId"], admin["SecretAccessKey"])
    name = f"cli-{uuid.uuid4().hex[:8]}"
    deploy(sm, name, str(write_echo_model(tmp_path / "echo")))  # a tiny model.py: no model weights
    assert wait_status(sm, name)["EndpointStatus"] == "InService"
    policy = tmp_path / "invoke-only.json"
    policy.write_text(json.dumps(INVOKE_ONLY))
    invoker = create_key(server.home, "--name", "cli-invoker", "--policy", str(policy))
    time.sleep(1.0)
    key = (invoker["AccessKeyId"], invoker["SecretAccessKey"])
    out = tmp_path / "answer.json"
    done = aws(
        server,
        aws_home,
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        name,
        "--content-type",
        "application/json",
        "--body",
        '{"x": 1}',
        str(out),
        key=key,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(out.read_text())["echo"] == '{"x": 1}'
    # the same key may not list (its policy allows InvokeEndpoint* and Describe* only)
    denied = aws(server, aws_home, "sagemaker", "list-endpoints", key=key)
    assert denied.returncode != 0
    assert "(AccessDeniedException)" in denied.stderr and "sagemaker:ListEndpoints" in denied.stderr
    described = aws(server, aws_home, "sagemaker", "describe-endpoint", "--endpoint-name", name, key=key)
    assert described.returncode == 0 and json.loads(described.stdout)["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName=name)
