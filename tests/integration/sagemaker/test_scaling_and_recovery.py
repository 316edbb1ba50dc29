"""Instance counts and weights change live; an instance that dies is replaced while the endpoint serves."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, SteadyLoad, deploy, wait_status, worker_process

FAST = {"Delay": 1, "MaxAttempts": 120}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pids_serving(runtime: Any, name: str, calls: int = 30) -> set[int]:
    return {
        json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"x")["Body"].read())["worker"] for _ in range(calls)
    }


def test_scale_out_and_in_with_update_endpoint_weights_and_capacities(sm: Any, runtime: Any, echo_model: Path) -> None:
    name = unique("scale")
    deploy(sm, name, str(echo_model))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    assert len(pids_serving(runtime, name, 5)) == 1

    sm.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}]
    )
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    with pytest.raises(ClientError) as exc:
        sm.delete_endpoint(EndpointName=name)
    assert "Cannot update in-progress endpoint" in exc.value.response["Error"]["Message"]
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (2, 2)
    assert len(pids_serving(runtime, name)) == 2

    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 1, "DesiredWeight": 0.5}],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert (variant["CurrentInstanceCount"], variant["CurrentWeight"], variant["DesiredWeight"]) == (1, 0.5, 0.5)
    assert len(pids_serving(runtime, name, 5)) == 1

    with pytest.raises(ClientError) as exc:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "Nope", "DesiredWeight": 1.0}]
        )
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "Nope" in exc.value.response["Error"]["Message"]
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)


def test_a_worker_that_dies_is_replaced(server: ServerProcess, sm: Any, runtime: Any, echo_model: Path) -> None:
    name = unique("phoenix")
    deploy(sm, name, str(echo_model), count=2)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    before = pids_serving(runtime, name)
    assert len(before) == 2
    victim = sorted(before)[0]
    with SteadyLoad(runtime, name) as load:
        time.sleep(0.5)
        os.kill(worker_process(server.home, victim), signal.SIGKILL)
        time.sleep(2)
    assert load.errors == [], load.errors[:3]  # no non-streaming request is lost
    assert len(load.versions) > 20
    deadline = time.monotonic() + 60
    while True:
        desc = wait_status(sm, name)
        assert desc["EndpointStatus"] == "InService"  # stays InService while an instance serves
        now = pids_serving(runtime, name, 20)
        if victim not in now and len(now) == 2:
            break
        assert time.monotonic() < deadline, f"instance not replaced: {now}"
        time.sleep(0.5)
    assert desc["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)


def test_an_instance_that_stops_answering_ping_is_replaced(tmp_path: Path, echo_model: Path) -> None:
    server = ServerProcess(tmp_path / "home", env={"MODELHOST_HEALTH_INTERVAL_S": "0.5"}).start()
    try:
        sm, runtime = server.clients()
        deploy(sm, "hung", str(echo_model))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="hung", WaiterConfig=FAST)
        (victim,) = pids_serving(runtime, "hung", 3)
        os.kill(worker_process(server.home, victim), signal.SIGSTOP)  # alive, but answers nothing
        deadline = time.monotonic() + 30
        while True:
            try:
                if pids_serving(runtime, "hung", 1) != {victim}:
                    break
            except ClientError:
                pass  # requests may fail while the only instance is hung
            assert time.monotonic() < deadline, "the hung instance was not replaced"
            time.sleep(0.5)
        assert "stopped answering /ping" in (server.home / "logs" / "hung" / "endpoint.log").read_text()
    finally:
        server.stop()
