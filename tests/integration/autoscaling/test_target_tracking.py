"""Target tracking end to end, with real workers and real boto3: under load a variant scales out past its
target and, when the load falls, back in after its cooldown, with zero failed requests throughout; each
change is in DescribeScalingActivities and DescribeEndpoint. Periods and cooldowns are shortened through the
server's settings (MODELHOST_SCALING_*), never by sleeping minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.server import ServerProcess, deploy, write_echo_model

FAST_SCALING = {
    "MODELHOST_SCALING_EVALUATION_S": "10",
    "MODELHOST_SCALING_SCALE_IN_POINTS": "2",
    "MODELHOST_SCALING_SCALE_OUT_COOLDOWN_S": "5",
    "MODELHOST_SCALING_SCALE_IN_COOLDOWN_S": "5",
    "MODELHOST_SCALING_INTERVAL_S": "2",
    "MODELHOST_SCALE_TO_ZERO_IDLE_S": "600",
}
RESOURCE = "endpoint/tracked/variant/AllTraffic"


class Load:
    """Requests from `threads` threads, each pausing `pause_s` between calls; every error is kept."""

    def __init__(self, runtime: Any, threads: int, pause_s: float, endpoint: str = "tracked") -> None:
        self.runtime, self.pause_s, self.endpoint = runtime, pause_s, endpoint
        self.done = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.runtime.invoke_endpoint(EndpointName=self.endpoint, Body=b"x")["Body"].read()
                self.done += 1
            except Exception as exc:
                self.errors.append(repr(exc))
            self._stop.wait(self.pause_s)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("tracking-home"), env=FAST_SCALING).start()
    yield proc
    proc.stop()


def wait_for(sm: Any, desired: int, deadline_s: float, *, at_least: bool = False) -> float:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        variant = sm.describe_endpoint(EndpointName="tracked")["ProductionVariants"][0]
        count, current = variant["DesiredInstanceCount"], variant["CurrentInstanceCount"]
        if (count >= desired if at_least else count == desired) and current == count:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"the variant did not reach {desired} instances within {deadline_s} s")


@pytest.mark.slow
def test_scales_out_under_load_and_back_in_with_no_failed_request(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    deploy(sm, "tracked", str(write_echo_model(tmp_path / "m")))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="tracked", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    aas = boto3.client(
        "application-autoscaling", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x",
        aws_secret_access_key="y", config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    dimension = {"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE,
                 "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}  # fmt: skip
    aas.register_scalable_target(**dimension, MinCapacity=1, MaxCapacity=3)
    aas.put_scaling_policy(
        PolicyName="per-instance", PolicyType="TargetTrackingScaling", **dimension,
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 60.0,  # invocations per instance per minute: 1 request/s
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 5, "ScaleOutCooldown": 5,
        },
    )  # fmt: skip
    with Load(runtime, threads=4, pause_s=0.05) as heavy:  # tens of requests a second: well past the target
        out_after = wait_for(sm, 2, 90, at_least=True)  # ceil(1 × rate / target), capped at MaxCapacity 3
        wait_for(sm, 3, 90)
    assert heavy.errors == [], heavy.errors[:3]
    assert heavy.done > 100
    with Load(runtime, threads=1, pause_s=2.0) as light:  # 0.5 request/s: below the target for one instance
        wait_for(sm, 1, 120)
    assert light.errors == [], light.errors[:3]
    assert out_after < 60
    found = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=RESOURCE)
    activities = found["ScalingActivities"]
    descriptions = [a["Description"] for a in activities]
    assert "Setting desired instance count to 1." in descriptions
    scaled_out = ("Setting desired instance count to 2.", "Setting desired instance count to 3.")
    assert any(d in descriptions for d in scaled_out)
    assert all(a["StatusCode"] == "Successful" for a in activities)


@pytest.mark.slow
def test_a_step_scaling_policy_fires_from_a_cloudwatch_alarm(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    deploy(sm, "stepped", str(write_echo_model(tmp_path / "m")))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="stepped", WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x",
                            aws_secret_access_key="y", config=Config(retries={"max_attempts": 1}))  # fmt: skip

    aas, cw = client("application-autoscaling"), client("cloudwatch")
    resource = "endpoint/stepped/variant/AllTraffic"
    dimension = {"ServiceNamespace": "sagemaker", "ResourceId": resource,
                 "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}  # fmt: skip
    aas.register_scalable_target(**dimension, MinCapacity=1, MaxCapacity=3)
    policy = aas.put_scaling_policy(
        PolicyName="add-one", PolicyType="StepScaling", **dimension,
        StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity", "Cooldown": 600,
                                        "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]},
    )  # fmt: skip
    cw.put_metric_alarm(
        AlarmName="stepped-busy", Namespace="AWS/SageMaker", MetricName="Invocations", Statistic="Sum",
        Dimensions=[{"Name": "EndpointName", "Value": "stepped"}, {"Name": "VariantName", "Value": "AllTraffic"}],
        Period=10, EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=[policy["PolicyARN"]],
    )  # fmt: skip
    with Load(runtime, threads=2, pause_s=0.05, endpoint="stepped") as load:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            variant = sm.describe_endpoint(EndpointName="stepped")["ProductionVariants"][0]
            if variant["DesiredInstanceCount"] == 2 and variant["CurrentInstanceCount"] == 2:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the alarm's step policy did not add an instance")
    assert load.errors == [], load.errors[:3]
    alarm = cw.describe_alarms(AlarmNames=["stepped-busy"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"
    found = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingActivities"]
    assert any("stepped-busy" in a["Cause"] and a["Description"] == "Setting desired instance count to 2."
               for a in found), found  # fmt: skip
    time.sleep(6)  # the Cooldown (600 s) holds further steps while the alarm stays in ALARM
    assert sm.describe_endpoint(EndpointName="stepped")["ProductionVariants"][0]["DesiredInstanceCount"] == 2
