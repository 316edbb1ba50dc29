"""An asynchronous endpoint scales out on its backlog with a target-tracking policy on the customized metric
ApproximateBacklogSizePerInstance, as SageMaker's documentation sets it up (real server, workers, boto3)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.integration.async_inference.test_async_inference import FAST, REGION, async_endpoint
from tests.integration.server import ServerProcess, write_echo_model

ONE_SECOND_MODEL = """
import time
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    time.sleep(1.0)
    return Output().add("done:" + inputs.get_as_string())
"""
REQUESTS = 60


def client(server: ServerProcess, service: str) -> Any:
    return boto3.client(service, endpoint_url=server.url, region_name=REGION, aws_access_key_id="x",
                        aws_secret_access_key="y", config=Config(retries={"max_attempts": 1}))  # fmt: skip


def test_backlog_per_instance_scales_the_endpoint_out(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home").start()
    try:
        sm, runtime = server.clients()
        name = "async-backlog"
        model = write_echo_model(tmp_path / "model", model_py=ONE_SECOND_MODEL)
        async_endpoint(sm, name, model, str(tmp_path / "out"), concurrency=1)
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
        aas = client(server, "application-autoscaling")
        resource = f"endpoint/{name}/variant/AllTraffic"
        dimension = "sagemaker:variant:DesiredInstanceCount"
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, MinCapacity=1,
                                     MaxCapacity=2, ScalableDimension=dimension)  # fmt: skip
        aas.put_scaling_policy(
            PolicyName="backlog", ServiceNamespace="sagemaker", ResourceId=resource, PolicyType="TargetTrackingScaling",
            ScalableDimension=dimension,
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 5.0,
                "CustomizedMetricSpecification": {
                    "MetricName": "ApproximateBacklogSizePerInstance", "Namespace": "AWS/SageMaker",
                    "Dimensions": [{"Name": "EndpointName", "Value": name}], "Statistic": "Average",
                },
            },
        )  # fmt: skip
        answers = [runtime.invoke_endpoint_async(EndpointName=name, Body=f"r{i}".encode()) for i in range(REQUESTS)]
        deadline = time.monotonic() + 90
        while sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"] < 2:
            assert time.monotonic() < deadline, aas.describe_scaling_activities(ServiceNamespace="sagemaker")
            time.sleep(1)
        activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)
        assert any("Setting desired instance count to 2" in a["Description"] for a in activities["ScalingActivities"])
        deadline = time.monotonic() + 90
        for answer in answers:  # every request still gets its answer once the fleet has grown
            path = Path(answer["OutputLocation"])
            while not path.exists():
                assert time.monotonic() < deadline, f"{path} never written"
                time.sleep(0.5)
        assert {Path(a["OutputLocation"]).read_text() for a in answers} == {f"done:r{i}" for i in range(REQUESTS)}
    finally:
        server.stop()
