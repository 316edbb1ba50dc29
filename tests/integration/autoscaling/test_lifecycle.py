"""Activities the scaling loop records, persistence across a restart, removal with the endpoint, the authorize
hook, and hostile requests (never a 500)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from modelhost.autoscaling.records import ActivityStatus, NotScaledReason
from modelhost.autoscaling.scaling_store import finish_activity, record_activity, scaling_state
from tests.integration.autoscaling.scaling_server import ScalingServer
from tests.integration.autoscaling.test_scalable_targets import NS, RID, error_of, register
from tests.integration.autoscaling.test_scaling_policies import STEPS, TARGET, put_tracking


def configure(aas: Any) -> None:
    register(aas, MinCapacity=0, MaxCapacity=4)
    put_tracking(aas)
    aas.put_scaling_policy(PolicyName="steps", PolicyType="StepScaling", StepScalingPolicyConfiguration=STEPS, **TARGET)
    aas.put_scheduled_action(ScheduledActionName="a", Schedule="rate(1 day)", ScalableTargetAction={"MinCapacity": 1},
                             **TARGET)  # fmt: skip


def test_activities_recorded_by_the_loop_are_described(scaling: ScalingServer, aas: Any) -> None:
    register(aas, MinCapacity=0, MaxCapacity=4)
    cause = "monitor alarm TargetTracking-endpoint/ep/variant/AllTraffic-AlarmHigh-x in state ALARM triggered policy p1"
    first = record_activity(scaling.records, resource_id=RID, description="Setting desired instance count to 2.",
                            cause=cause, now=1_700_000_000.0)  # fmt: skip
    finish_activity(scaling.records, first.activity_id, status=ActivityStatus.SUCCESSFUL, now=1_700_000_030.0,
                    status_message="Successfully set desired instance count to 2.")  # fmt: skip
    record_activity(
        scaling.records, resource_id=RID, description="Setting desired instance count to 5.", cause=cause,
        now=1_700_000_100.0, status=ActivityStatus.FAILED,
        not_scaled_reasons=(NotScaledReason("AlreadyAtMaxCapacity", max_capacity=4, current_capacity=4),),
    )  # fmt: skip
    [shown] = aas.describe_scaling_activities(ServiceNamespace=NS, ResourceId=RID)["ScalingActivities"]
    assert shown["ActivityId"] == first.activity_id and shown["StatusCode"] == "Successful"
    assert shown["Description"] == "Setting desired instance count to 2." and shown["Cause"] == cause
    assert shown["StatusMessage"] == "Successfully set desired instance count to 2."
    assert shown["EndTime"].timestamp() - shown["StartTime"].timestamp() == 30
    both = aas.describe_scaling_activities(ServiceNamespace=NS, IncludeNotScaledActivities=True)["ScalingActivities"]
    assert [a["StatusCode"] for a in both] == ["Failed", "Successful"]  # newest first
    assert both[0]["NotScaledReasons"] == [{"Code": "AlreadyAtMaxCapacity", "MaxCapacity": 4, "CurrentCapacity": 4}]


def test_everything_survives_a_restart(scaling: ScalingServer, aas: Any) -> None:
    configure(aas)
    before = (
        aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"],
        aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"],
        aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"],
    )
    scaling.reopen()
    after = (
        aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"],
        aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"],
        aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"],
    )
    assert after == before and len(after[1]) == 2
    [(target, policies, actions)] = scaling_state(scaling.records)
    assert (target.resource_id, [p.name for p in policies], [a.name for a in actions]) == (RID, ["p1", "steps"], ["a"])


def test_deleting_the_endpoint_removes_its_scaling(scaling: ScalingServer, aas: Any) -> None:
    configure(aas)
    scaling.add_endpoint("other")
    register(aas, "endpoint/other/variant/AllTraffic", MinCapacity=1, MaxCapacity=2)
    scaling.client("sagemaker").delete_endpoint(EndpointName="ep")
    [left] = aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"]
    assert left["ResourceId"] == "endpoint/other/variant/AllTraffic"
    assert aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"] == []
    assert aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"] == []
    with pytest.raises(ClientError) as excinfo:  # the endpoint is going away: it cannot be registered again
        register(aas, MinCapacity=1, MaxCapacity=2)
    assert error_of(excinfo)[0] == "ValidationException"


def test_the_authorize_hook_sees_the_call_before_anything_is_done(tmp_path: Any) -> None:
    server = ScalingServer(tmp_path / "home", deny=frozenset({"application-autoscaling:RegisterScalableTarget"}))
    server.start()
    try:
        server.add_endpoint("ep")
        aas = server.client()
        with pytest.raises(ClientError) as excinfo:
            register(aas, MinCapacity=9, MaxCapacity=1)  # refused before validation
        assert error_of(excinfo)[0] == "AccessDeniedException"
        assert server.records.scalable_targets.list() == []
        aas.describe_scalable_targets(ServiceNamespace=NS)
        call = server.calls[-1]
        assert (call.operation, call.action, call.method) == (
            "DescribeScalableTargets", "application-autoscaling:DescribeScalableTargets", "POST",
        )  # fmt: skip
        assert b'"ServiceNamespace"' in call.body and any(k == b"authorization" for k, _ in call.raw_headers)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("AnyScaleFrontendService.DescribeScalableTargets", b"{not json", "SerializationException"),
        ("AnyScaleFrontendService.DescribeScalableTargets", b"[1, 2]", "SerializationException"),
        ("AnyScaleFrontendService.DescribeScalableTargets", b'{"ServiceNamespace": 1e999}', "ValidationException"),
        ("AnyScaleFrontendService.DescribeScalableTargets", b'{"ServiceNamespace": "sagemaker", "MaxResults": "x"}',
         "ValidationException"),
        ("AnyScaleFrontendService.RegisterScalableTarget", b"{}", "ValidationException"),
        ("AnyScaleFrontendService.TagResource", b"{}", "UnknownOperationException"),
        ("AnyScaleFrontendService.PutScalingPolicy",
         b'{"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/ep/variant/AllTraffic", '
         b'"ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "PolicyName": "p", '
         b'"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {"AdjustmentType": "ExactCapacity", '
         b'"StepAdjustments": [{"ScalingAdjustment": 1.5}]}}', "ValidationException"),
    ],
)  # fmt: skip
def test_hostile_bodies_get_aws_errors_not_500s(scaling: ScalingServer, target: str, body: bytes, code: str) -> None:
    if "PutScalingPolicy" in target:
        register(scaling.client(), MinCapacity=1, MaxCapacity=2)
    headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
    answer = httpx.post(scaling.url + "/", content=body, headers=headers, trust_env=False)
    assert answer.status_code == 400, answer.text
    assert answer.json()["__type"] == code


def test_a_body_over_the_limit_is_refused(scaling: ScalingServer) -> None:
    headers = {"X-Amz-Target": "AnyScaleFrontendService.DescribeScalableTargets"}
    answer = httpx.post(scaling.url + "/", content=b" " * (1024 * 1024 + 1), headers=headers, trust_env=False)
    assert answer.status_code == 413 and answer.json()["__type"] == "RequestEntityTooLargeException"
