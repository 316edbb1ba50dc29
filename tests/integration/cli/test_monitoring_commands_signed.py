"""`modelhost top`, `metrics` and `logs -f` on a server with access keys: they sign with the CLI's key
(MODELHOST_ACCESS_KEY_ID / MODELHOST_SECRET_ACCESS_KEY) and an unknown key gets the server's refusal as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import pytest

from tests.integration.cli.test_monitoring_commands import MODEL_PY, LineReader
from tests.integration.server import ServerProcess, deploy, write_echo_model

NAME = "signed-observed"
CALLS = 3


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server with one full-access key, serving NAME, invoked CALLS times."""
    home = tmp_path_factory.mktemp("signed-home")
    created = subprocess.run([sys.executable, "-m", "modelhost", "keys", "create", "--json", "--home", str(home)],
                             check=True, capture_output=True, text=True)  # fmt: skip
    key = json.loads(created.stdout)
    roots = str(tmp_path_factory.getbasetemp())  # with keys, local model data must come from configured roots
    server = ServerProcess(home, env={"MODELHOST_LOCAL_DATA_ROOTS": roots}).start()
    session = boto3.session.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                    region_name="us-east-1")  # fmt: skip
    sm = session.client("sagemaker", endpoint_url=server.url)
    runtime = session.client("sagemaker-runtime", endpoint_url=server.url)
    deploy(sm, NAME, str(write_echo_model(tmp_path_factory.mktemp("signed") / "model", model_py=MODEL_PY)))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    for _ in range(CALLS):
        runtime.invoke_endpoint(EndpointName=NAME, Body=b"signed")
    yield server, key
    server.stop()


def env(server: ServerProcess, key: dict[str, str] | None) -> dict[str, str]:
    values = {**os.environ, "MODELHOST_URL": server.url}
    for name in ("MODELHOST_ACCESS_KEY_ID", "MODELHOST_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        values.pop(name, None)
    if key is not None:
        values |= {"MODELHOST_ACCESS_KEY_ID": key["AccessKeyId"], "MODELHOST_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    return values


def run(server: ServerProcess, key: dict[str, str] | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelhost", *args], env=env(server, key), capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_top_signs_its_scrapes(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, key = keyed
    shown = run(server, key, "top", "--once", "--json", "--interval", "0.5")
    assert shown.returncode == 0, shown.stderr
    [row] = [r for r in json.loads(shown.stdout)["variants"] if r["endpoint"] == NAME]
    assert row["invocations_total"] == CALLS
    refused = run(server, None, "top", "--once")  # the CLI's dummy key is not one of the server's
    assert refused.returncode == 2 and refused.stderr.startswith("error: UnrecognizedClientException: ")
    assert len(refused.stderr.splitlines()) == 1


def test_metrics_signs_its_cloudwatch_calls(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, key = keyed
    deadline = time.monotonic() + 45
    while True:  # the 10 s writer may have flushed the instance metrics before the invocations came
        shown = run(server, key, "metrics", NAME, "--json")
        if shown.returncode == 0:
            overall = json.loads(shown.stdout)["variants"][0]["overall"]
            if overall.get("invocations") == CALLS or time.monotonic() > deadline:
                break
        else:
            assert "no CloudWatch data" in shown.stderr, shown.stderr  # not written yet; anything else is a failure
            assert time.monotonic() < deadline, shown.stderr
        time.sleep(2)
    assert overall.get("invocations") == CALLS, overall
    refused = run(server, None, "metrics", NAME)
    assert refused.returncode == 1 and refused.stderr.startswith("error: UnrecognizedClientException: ")


def test_logs_follow_signs_its_logs_calls(keyed: tuple[ServerProcess, dict[str, str]]) -> None:
    server, key = keyed
    follower = subprocess.Popen([sys.executable, "-m", "modelhost", "logs", NAME, "-f"], env=env(server, key),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        shown = LineReader(follower.stdout).until("handled signed", 60)
        assert any(
            line.startswith("[AllTraffic/alltraffic-0] ") and line.endswith(" stdout: handled signed") for line in shown
        ), shown
    finally:
        follower.send_signal(2)
        _, err = follower.communicate(timeout=30)
    assert follower.returncode == 0 and "Traceback" not in err, err
    refused = run(server, None, "logs", NAME, "-f")
    assert refused.returncode == 1 and refused.stderr.startswith("error: UnrecognizedClientException: ")
