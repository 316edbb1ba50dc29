"""The modelhost CLI against a real server: deploy, invoke, ls, describe, logs, delete, models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.server import ServerProcess, write_echo_model


def run(server: ServerProcess, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelhost", *args],
        env={**os.environ, "MODELHOST_URL": server.url, "MODELHOST_HOME": str(server.home)},
        input=input_text,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_deploy_invoke_and_delete_with_the_cli(server: ServerProcess, tmp_path: Path) -> None:
    folder = write_echo_model(tmp_path / "cli-echo")
    deployed = run(server, "deploy", str(folder), "--name", "cli-echo", "--instance-count", "1")
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.strip() == "cli-echo"
    assert "InService" in deployed.stderr

    invoked = run(server, "invoke", "cli-echo", '{"inputs": "hello"}')
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["echo"] == '{"inputs": "hello"}'
    piped = run(server, "invoke", "cli-echo", "-", input_text="from stdin")
    assert json.loads(piped.stdout)["echo"] == "from stdin"

    listed = run(server, "ls")
    assert any(line.split()[:2] == ["cli-echo", "InService"] for line in listed.stdout.splitlines())
    assert "cli-echo" in run(server, "ls", "--models").stdout
    described = json.loads(run(server, "describe", "cli-echo").stdout)
    assert described["EndpointStatus"] == "InService"
    logs = run(server, "logs", "cli-echo")
    assert "endpoint cli-echo is InService" in logs.stdout
    assert "alltraffic-0.log" in logs.stdout

    deleted = run(server, "delete", "cli-echo")
    assert deleted.returncode == 0, deleted.stderr
    assert "endpoint cli-echo deleted" in deleted.stderr
    assert "cli-echo" not in run(server, "ls", "--models").stdout


def test_errors_are_one_line_not_tracebacks(server: ServerProcess, tmp_path: Path) -> None:
    missing = run(server, "describe", "no-such-endpoint")
    assert missing.returncode == 1
    assert missing.stderr.startswith('error: ValidationException: Could not find endpoint "arn:aws:sagemaker:')
    assert "Traceback" not in missing.stderr
    failed = run(
        server,
        "deploy",
        str(write_echo_model(tmp_path / "bad", model_py="raise RuntimeError('nope')\n")),
        "--name",
        "cli-bad",
    )
    assert failed.returncode == 1
    assert "load failed: RuntimeError: nope" in failed.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "modelhost", "ls", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 2
    assert "cannot reach the modelhost server" in unreachable.stderr


def test_models_add_and_ls(tmp_path: Path, server: ServerProcess) -> None:
    hf = tmp_path / "tiny"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "llama"}')
    added = run(server, "models", "add", "acme/tiny-model", str(hf))
    assert added.returncode == 0, added.stderr
    assert "acme/tiny-model" in run(server, "models", "ls").stdout
    bad = run(server, "models", "add", "not a valid id!", str(hf))
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")


def test_quotas(tmp_path: Path) -> None:
    inventory = '{"gpus": [{"memory_gib": 24}, {"memory_gib": 24}], "cpus": 8, "memory_gib": 32}'
    home = tmp_path / "home"
    proc = ServerProcess(home, env={"MODELHOST_INVENTORY": inventory, "MODELHOST_QUOTAS": "ml.m5.large=1"}).start()
    try:
        sm, _ = proc.clients()
        folder = write_echo_model(tmp_path / "q")
        sm.create_model(ModelName="q", PrimaryContainer={"Image": "djl-inference", "ModelDataUrl": str(folder)})
        sm.create_endpoint_config(
            EndpointConfigName="q",
            ProductionVariants=[
                {"VariantName": "A", "ModelName": "q", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
            ],
        )
        sm.create_endpoint(EndpointName="q1", EndpointConfigName="q")
        try:
            sm.create_endpoint(EndpointName="q2", EndpointConfigName="q")
            raise AssertionError("the quota was not enforced")
        except sm.exceptions.ResourceLimitExceeded as exc:
            assert "'ml.m5.large for endpoint usage' is 1 Instances, with current utilization of 1 Instances" in str(
                exc
            )
        shown = run(proc, "quotas")
        assert shown.returncode == 0, shown.stderr
        assert "host: 2 GPU(s), 8 CPU(s), 32.0 GiB" in shown.stdout
        row = next(line for line in shown.stdout.splitlines() if line.startswith("ml.m5.large"))
        assert row.split() == ["ml.m5.large", "1", "1", "0"]
    finally:
        proc.stop()
