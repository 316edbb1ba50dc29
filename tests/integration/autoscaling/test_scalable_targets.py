"""RegisterScalableTarget / DescribeScalableTargets / DeregisterScalableTarget through boto3."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.autoscaling.scaling_server import ScalingServer

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"
RID = "endpoint/ep/variant/AllTraffic"


def register(aas: Any, resource_id: str = RID, **extra: Any) -> Any:
    return aas.register_scalable_target(ServiceNamespace=NS, ResourceId=resource_id, ScalableDimension=DIM, **extra)


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def test_register_describe_update_and_deregister(aas: Any) -> None:
    arn = register(aas, MinCapacity=0, MaxCapacity=4)["ScalableTargetARN"]
    assert arn.startswith("arn:aws:application-autoscaling:us-west-2:123456789012:scalable-target/")
    [target] = aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (RID, 0, 4)
    assert target["ScalableTargetARN"] == arn and target["ScalableDimension"] == DIM
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in target["RoleARN"]
    assert target["SuspendedState"] == {
        "DynamicScalingInSuspended": False,
        "DynamicScalingOutSuspended": False,
        "ScheduledScalingSuspended": False,
    }

    again = register(aas, MaxCapacity=8, SuspendedState={"DynamicScalingInSuspended": True})
    assert again["ScalableTargetARN"] == arn  # re-registering updates the same target
    [target] = aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[RID])["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 8)
    assert target["SuspendedState"]["DynamicScalingInSuspended"] is True

    aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=RID, ScalableDimension=DIM)
    assert aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"] == []


def test_min_above_max_is_refused_in_aws_words(aas: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        register(aas, MinCapacity=5, MaxCapacity=2)
    assert error_of(excinfo) == ("ValidationException", "Minimum capacity cannot be greater than maximum capacity")
    register(aas, MinCapacity=1, MaxCapacity=2)
    with pytest.raises(ClientError) as excinfo:  # an update that would cross the stored bound
        register(aas, MinCapacity=3)
    assert error_of(excinfo)[0] == "ValidationException"


def test_a_new_target_needs_both_bounds(aas: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        register(aas, MaxCapacity=2)
    assert error_of(excinfo)[0] == "ValidationException"


@pytest.mark.parametrize(
    ("resource_id", "message"),
    [
        ("endpoint/nope/variant/AllTraffic", "SageMaker endpoint doesn't exist: endpoint/nope/variant/AllTraffic"),
        ("endpoint/ep/variant/Nope", "SageMaker endpoint variant doesn't exist: endpoint/ep/variant/Nope"),
        ("service/cluster/web", "Unsupported service namespace, resource type or scalable dimension"),
    ],
)
def test_unknown_endpoints_variants_and_resource_types_are_refused(aas: Any, resource_id: str, message: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        register(aas, resource_id, MinCapacity=1, MaxCapacity=2)
    assert error_of(excinfo) == ("ValidationException", message)


def test_model_constraints_are_checked_with_aws_wording(aas: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        aas.register_scalable_target(ServiceNamespace="nope", ResourceId=RID, ScalableDimension=DIM)
    code, message = error_of(excinfo)
    assert code == "ValidationException"
    assert message.startswith("1 validation error detected: Value 'nope' at 'serviceNamespace' failed to satisfy")


def test_other_namespaces_describe_as_empty(aas: Any) -> None:
    register(aas, MinCapacity=1, MaxCapacity=2)
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []


def test_deregistering_an_unknown_target_is_object_not_found(aas: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        aas.deregister_scalable_target(ServiceNamespace=NS, ResourceId=RID, ScalableDimension=DIM)
    assert error_of(excinfo) == (
        "ObjectNotFoundException",
        f"No scalable target found for service namespace: sagemaker, resource ID: {RID}, scalable dimension: {DIM}",
    )
    assert isinstance(excinfo.value, aas.exceptions.ObjectNotFoundException)


def test_paging_with_max_results_and_next_token(scaling: ScalingServer, aas: Any) -> None:
    names = [f"ep{i}" for i in range(5)]
    for name in names:
        scaling.add_endpoint(name)
        register(aas, f"endpoint/{name}/variant/AllTraffic", MinCapacity=1, MaxCapacity=2)
    first = aas.describe_scalable_targets(ServiceNamespace=NS, MaxResults=2)
    assert len(first["ScalableTargets"]) == 2 and "NextToken" in first
    pages = aas.get_paginator("describe_scalable_targets").paginate(
        ServiceNamespace=NS, PaginationConfig={"PageSize": 2}
    )
    seen = [t["ResourceId"] for p in pages for t in p["ScalableTargets"]]
    assert seen == [f"endpoint/{n}/variant/AllTraffic" for n in names]
    with pytest.raises(ClientError) as excinfo:
        aas.describe_scalable_targets(ServiceNamespace=NS, MaxResults=51)
    assert error_of(excinfo)[0] == "ValidationException"
    with pytest.raises(ClientError) as excinfo:
        aas.describe_scalable_targets(ServiceNamespace=NS, NextToken="bogus")
    assert error_of(excinfo)[0] == "InvalidNextTokenException"
