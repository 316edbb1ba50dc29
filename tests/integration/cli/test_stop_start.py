"""`modelhost stop` frees every instance but keeps the endpoint InService with 0 instances (its config, model
and caches kept; requests get ServiceUnavailable); `modelhost ls` shows it stopped; `modelhost start` brings
it back at the config's instance count and it answers again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.cli.test_cli import run
from tests.integration.server import ServerProcess, deploy, write_echo_model


def counts(sm: Any, name: str) -> tuple[str, int, int]:
    desc = sm.describe_endpoint(EndpointName=name)
    variant = desc["ProductionVariants"][0]
    return desc["EndpointStatus"], variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]


def test_stop_and_start_round_trip(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    deploy(sm, "pausable", str(write_echo_model(tmp_path / "model")), count=2)
    sm.get_waiter("endpoint_in_service").wait(EndpointName="pausable", WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    stopped = run(server, "stop", "pausable")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stderr and "Traceback" not in stopped.stderr
    assert counts(sm, "pausable") == ("InService", 0, 0)
    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint(EndpointName="pausable", Body=b"x")
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"
    listed = run(server, "ls")
    assert any(line.split()[:2] == ["pausable", "Stopped"] for line in listed.stdout.splitlines()), listed.stdout
    assert sm.describe_endpoint_config(EndpointConfigName="pausable")["ProductionVariants"]  # the config is kept

    started = run(server, "start", "pausable")
    assert started.returncode == 0, started.stderr
    assert counts(sm, "pausable") == ("InService", 2, 2)
    assert runtime.invoke_endpoint(EndpointName="pausable", Body=b"x")["ResponseMetadata"]["HTTPStatusCode"] == 200
    again = run(server, "start", "pausable")  # already running: a no-op that says so
    assert again.returncode == 0


def test_stop_of_an_unknown_endpoint_is_one_line(server: ServerProcess) -> None:
    done = run(server, "stop", "nope")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Could not find endpoint" in done.stderr
