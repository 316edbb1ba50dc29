"""PutScalingPolicy / DescribeScalingPolicies / DeleteScalingPolicy through boto3: target tracking and step."""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.autoscaling.test_scalable_targets import DIM, NS, RID, error_of, register

TARGET = {"ServiceNamespace": NS, "ResourceId": RID, "ScalableDimension": DIM}
TRACKING = {
    "TargetValue": 70.0,
    "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
    "ScaleInCooldown": 300,
    "ScaleOutCooldown": 60,
}
STEPS = {
    "AdjustmentType": "ChangeInCapacity",
    "StepAdjustments": [
        {"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 10.0, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 10.0, "ScalingAdjustment": 2},
    ],
    "Cooldown": 120,
    "MetricAggregationType": "Average",
}


@pytest.fixture
def target(aas: Any) -> None:
    register(aas, MinCapacity=1, MaxCapacity=4)


def put_tracking(aas: Any, name: str = "p1", config: dict[str, Any] | None = None) -> Any:
    return aas.put_scaling_policy(
        PolicyName=name, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration=config or TRACKING, **TARGET,
    )  # fmt: skip


@pytest.mark.usefixtures("target")
def test_target_tracking_policy_returns_its_alarms_and_describes(aas: Any) -> None:
    put = put_tracking(aas)
    assert re.fullmatch(
        r"arn:aws:autoscaling:us-west-2:123456789012:scalingPolicy:[0-9a-f-]{36}:"
        r"resource/sagemaker/endpoint/ep/variant/AllTraffic:policyName/p1",
        put["PolicyARN"],
    )
    names = [a["AlarmName"] for a in put["Alarms"]]
    assert [n.split("-")[-6] for n in names] == ["AlarmHigh", "AlarmLow"]
    assert all(n.startswith("TargetTracking-endpoint/ep/variant/AllTraffic-Alarm") for n in names)
    assert put["Alarms"][0]["AlarmARN"] == f"arn:aws:cloudwatch:us-west-2:123456789012:alarm:{names[0]}"
    [policy] = aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"]
    assert policy["PolicyType"] == "TargetTrackingScaling" and policy["PolicyARN"] == put["PolicyARN"]
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {**TRACKING, "DisableScaleIn": False}
    assert policy["Alarms"] == put["Alarms"]

    again = put_tracking(aas, config={**TRACKING, "TargetValue": 5.0, "DisableScaleIn": True})
    assert again["PolicyARN"] == put["PolicyARN"]
    assert [a["AlarmName"] for a in again["Alarms"]] == names[:1]  # no AlarmLow without scale-in
    [policy] = aas.describe_scaling_policies(ServiceNamespace=NS, PolicyNames=["p1"])["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 5.0


@pytest.mark.usefixtures("target")
def test_customized_metrics_single_and_queries(aas: Any) -> None:
    single = {
        "MetricName": "Queue", "Namespace": "Custom", "Statistic": "Average", "Unit": "Count",
        "Dimensions": [{"Name": "EndpointName", "Value": "ep"}],
    }  # fmt: skip
    put_tracking(aas, "single", {"TargetValue": 3.0, "CustomizedMetricSpecification": single})
    queries = {
        "Metrics": [
            {"Id": "m1", "ReturnData": False, "MetricStat": {
                "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "Invocations",
                           "Dimensions": [{"Name": "EndpointName", "Value": "ep"}]}, "Stat": "Sum"}},
            {"Id": "e1", "Expression": "m1 / 60", "Label": "per second"},
        ]
    }  # fmt: skip
    put_tracking(aas, "math", {"TargetValue": 3.0, "CustomizedMetricSpecification": queries})
    shown = {
        p["PolicyName"]: p["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
        for p in aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=RID)["ScalingPolicies"]
    }
    assert shown == {"single": single, "math": queries}
    bad = {"Metrics": [{"Id": "m1", "Expression": "1"}, {"Id": "m2", "Expression": "2"}]}
    with pytest.raises(ClientError) as excinfo:
        put_tracking(aas, "bad", {"TargetValue": 3.0, "CustomizedMetricSpecification": bad})
    assert error_of(excinfo)[0] == "ValidationException"


@pytest.mark.usefixtures("target")
def test_concurrency_metric_is_served_and_other_predefined_metrics_are_not(aas: Any) -> None:
    concurrency = {"PredefinedMetricType": "SageMakerVariantConcurrentRequestsPerModelHighResolution"}
    put_tracking(aas, "c", {"TargetValue": 4.0, "PredefinedMetricSpecification": concurrency})
    with pytest.raises(ClientError) as excinfo:
        ecs = {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}
        put_tracking(aas, "x", {"TargetValue": 4.0, "PredefinedMetricSpecification": ecs})
    code, message = error_of(excinfo)
    assert code == "ValidationException"
    assert message.startswith("Scalable dimension sagemaker:variant:DesiredInstanceCount only supports")


@pytest.mark.usefixtures("target")
def test_step_scaling_policy(aas: Any) -> None:
    put = aas.put_scaling_policy(
        PolicyName="steps", PolicyType="StepScaling", StepScalingPolicyConfiguration=STEPS, **TARGET
    )
    assert "Alarms" not in put
    [policy] = aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"]
    assert policy["StepScalingPolicyConfiguration"] == STEPS
    overlapping = {**STEPS, "StepAdjustments": [
        {"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 10.0, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 5.0, "ScalingAdjustment": 2},
    ]}  # fmt: skip
    for config in (overlapping, {**STEPS, "MinAdjustmentMagnitude": 2}, {**STEPS, "StepAdjustments": []}):
        with pytest.raises(ClientError) as excinfo:
            aas.put_scaling_policy(PolicyName="bad", PolicyType="StepScaling",
                                   StepScalingPolicyConfiguration=config, **TARGET)  # fmt: skip
        assert error_of(excinfo)[0] == "ValidationException"


def test_a_policy_needs_a_registered_target(aas: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        put_tracking(aas)
    assert error_of(excinfo) == (
        "ObjectNotFoundException",
        f"No scalable target registered for service namespace: sagemaker, resource ID: {RID}, "
        f"scalable dimension: {DIM}",
    )


@pytest.mark.usefixtures("target")
def test_delete_policy_and_unknown_policy(aas: Any) -> None:
    put_tracking(aas)
    aas.delete_scaling_policy(PolicyName="p1", **TARGET)
    assert aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"] == []
    with pytest.raises(ClientError) as excinfo:
        aas.delete_scaling_policy(PolicyName="p1", **TARGET)
    assert error_of(excinfo) == (
        "ObjectNotFoundException",
        f"No scaling policy found for service namespace: sagemaker, resource ID: {RID}, scalable dimension: {DIM}, "
        "policy name: p1",
    )


@pytest.mark.usefixtures("target")
def test_policy_names_are_case_sensitive_and_deregistering_removes_policies(aas: Any) -> None:
    put_tracking(aas, "P1")
    put_tracking(aas, "p1")
    assert len(aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"]) == 2
    aas.deregister_scalable_target(**TARGET)
    assert aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"] == []


@pytest.mark.usefixtures("target")
def test_wrong_or_missing_configuration_is_refused(aas: Any) -> None:
    cases = [
        {"PolicyType": "TargetTrackingScaling"},
        {"PolicyType": "StepScaling", "TargetTrackingScalingPolicyConfiguration": TRACKING},
        {"TargetTrackingScalingPolicyConfiguration": TRACKING},  # no PolicyType for a new policy
        {"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 1.0}},
        {"PolicyType": "TargetTrackingScaling",
         "TargetTrackingScalingPolicyConfiguration": {**TRACKING, "TargetValue": 0.0}},
    ]  # fmt: skip
    for extra in cases:
        with pytest.raises(ClientError) as excinfo:
            aas.put_scaling_policy(PolicyName="bad", **TARGET, **extra)
        assert error_of(excinfo)[0] == "ValidationException", extra
