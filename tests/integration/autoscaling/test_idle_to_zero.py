"""The idle rule end to end: a variant whose scalable target allows MinCapacity 0 and that has no request for
MODELHOST_SCALE_TO_ZERO_IDLE_S is drained to 0 instances by the scaling loop (InService, DescribeEndpoint shows
0), and the next request brings it back without an error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.integration.server import ServerProcess, deploy, write_echo_model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"MODELHOST_SCALE_TO_ZERO_IDLE_S": "4", "MODELHOST_SCALING_INTERVAL_S": "1"}
    proc = ServerProcess(tmp_path_factory.mktemp("idle-home"), env=env).start()
    yield proc
    proc.stop()


def test_an_idle_variant_goes_to_zero_and_wakes_on_the_next_request(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    deploy(sm, "sleepy", str(write_echo_model(tmp_path / "m")))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="sleepy", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    aas = boto3.client("application-autoscaling", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="y", config=Config(retries={"max_attempts": 1}))
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId="endpoint/sleepy/variant/AllTraffic",
                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=0,
                                 MaxCapacity=1)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        desc = sm.describe_endpoint(EndpointName="sleepy")
        variant = desc["ProductionVariants"][0]
        if desc["EndpointStatus"] == "InService" and variant["CurrentInstanceCount"] == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the idle variant was not taken to zero instances")
    assert variant["DesiredInstanceCount"] == 0
    answer = runtime.invoke_endpoint(EndpointName="sleepy", Body=b"morning")
    assert json.loads(answer["Body"].read())["echo"] == "morning"
    assert "x-modelhost-cold-start-seconds" in answer["ResponseMetadata"]["HTTPHeaders"]
    resource = "endpoint/sleepy/variant/AllTraffic"
    found = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)
    causes = [a["Cause"] for a in found["ScalingActivities"]]
    assert any("no request for" in c for c in causes), causes
