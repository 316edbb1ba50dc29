"""Instances get whole GPUs of the host's inventory, never the same GPU twice; quotas follow the host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, wait_status, write_echo_model

GPU_MODEL = """
import os
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    return Output().add_as_json({"gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                 "worker": int(os.environ["SAGEMAKER_BIND_TO_PORT"]),
                                 "threads": os.environ.get("MODELHOST_CPU_THREADS")})
"""


def test_gpus_are_assigned_whole_and_never_twice(tmp_path: Path) -> None:
    inventory = '{"gpus": [{"memory_gib": 24}, {"memory_gib": 24}, {"memory_gib": 24}], "cpus": 12, "memory_gib": 96}'
    proc = ServerProcess(tmp_path / "home", env={"MODELHOST_INVENTORY": inventory}).start()
    try:
        sm, runtime = proc.clients()
        folder = write_echo_model(tmp_path / "gpu", model_py=GPU_MODEL)
        deploy(sm, "two", str(folder), instance_type="ml.g5.2xlarge", count=2)
        sm.get_waiter("endpoint_in_service").wait(EndpointName="two", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        seen = {}
        for _ in range(30):
            body = json.loads(runtime.invoke_endpoint(EndpointName="two", Body=b"x")["Body"].read())
            seen[body["worker"]] = (body["gpus"], body["threads"])
        assert sorted(g for g, _ in seen.values()) == ["0", "1"]
        assert {t for _, t in seen.values()} == {"4"}  # a third of the host's 12 CPUs per GPU
        with pytest.raises(ClientError) as exc:
            deploy(sm, "more", str(folder), instance_type="ml.g5.2xlarge", count=2)
        assert exc.value.response["Error"]["Code"] == "ResourceLimitExceeded"
        assert "is 3 Instances, with current utilization of 2 Instances and a request delta of 2" in str(exc.value)
        with pytest.raises(ClientError):
            sm.describe_endpoint(EndpointName="more")  # the refused endpoint left nothing behind
    finally:
        proc.stop()


def test_tensor_parallel_degree_runs_several_copies_per_instance(tmp_path: Path) -> None:
    inventory = json.dumps({"gpus": [{"memory_gib": 24}] * 4, "cpus": 8, "memory_gib": 64})
    proc = ServerProcess(tmp_path / "home", env={"MODELHOST_INVENTORY": inventory}).start()
    try:
        sm, runtime = proc.clients()
        folder = write_echo_model(
            tmp_path / "tp", properties="engine=Python\noption.tensor_parallel_degree=2\n", model_py=GPU_MODEL
        )
        deploy(sm, "tp2", str(folder), instance_type="ml.g5.12xlarge")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="tp2", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        assert sm.describe_endpoint(EndpointName="tp2")["ProductionVariants"][0]["CurrentInstanceCount"] == 1
        seen = {}
        for _ in range(30):
            body = json.loads(runtime.invoke_endpoint(EndpointName="tp2", Body=b"x")["Body"].read())
            seen[body["worker"]] = body["gpus"]
        assert sorted(seen.values()) == ["0,1", "2,3"]  # two copies, and the router uses both
        sm.delete_endpoint(EndpointName="tp2")
        sm.get_waiter("endpoint_deleted").wait(EndpointName="tp2", WaiterConfig={"Delay": 1, "MaxAttempts": 60})

        too_wide = write_echo_model(tmp_path / "tp8", properties="engine=Python\noption.tensor_parallel_degree=8\n")
        deploy(sm, "tp8", str(too_wide), instance_type="ml.g5.12xlarge")
        desc = wait_status(sm, "tp8")
        assert desc["EndpointStatus"] == "Failed"
        assert desc["FailureReason"] == (
            "placement failed: option.tensor_parallel_degree=8 needs 8 GPUs per model copy; ml.g5.12xlarge has 4."
        )
    finally:
        proc.stop()
