"""PutScheduledAction / DescribeScheduledActions / DeleteScheduledAction through boto3."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.autoscaling.test_scalable_targets import NS, RID, error_of, register
from tests.integration.autoscaling.test_scaling_policies import TARGET


@pytest.fixture
def target(aas: Any) -> None:
    register(aas, MinCapacity=1, MaxCapacity=4)


@pytest.mark.usefixtures("target")
def test_put_describe_update_delete(aas: Any) -> None:
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 6, 1, tzinfo=UTC)
    aas.put_scheduled_action(
        ScheduledActionName="nights", Schedule="cron(0 22 ? * MON-FRI *)", Timezone="Europe/Paris",
        StartTime=start, EndTime=end, ScalableTargetAction={"MinCapacity": 0, "MaxCapacity": 1}, **TARGET,
    )  # fmt: skip
    [action] = aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"]
    assert action["ScheduledActionName"] == "nights" and action["ResourceId"] == RID
    assert action["Schedule"] == "cron(0 22 ? * MON-FRI *)" and action["Timezone"] == "Europe/Paris"
    assert (action["StartTime"], action["EndTime"]) == (start, end)
    assert action["ScalableTargetAction"] == {"MinCapacity": 0, "MaxCapacity": 1}
    assert action["ScheduledActionARN"].startswith("arn:aws:autoscaling:us-west-2:123456789012:scheduledAction:")
    assert action["ScheduledActionARN"].endswith(f":resource/sagemaker/{RID}:scheduledActionName/nights")

    aas.put_scheduled_action(ScheduledActionName="nights", Schedule="rate(2 hours)", **TARGET)
    [updated] = aas.describe_scheduled_actions(ServiceNamespace=NS, ScheduledActionNames=["nights"])["ScheduledActions"]
    assert updated["Schedule"] == "rate(2 hours)" and updated["ScheduledActionARN"] == action["ScheduledActionARN"]
    assert updated["ScalableTargetAction"] == {"MinCapacity": 0, "MaxCapacity": 1}
    assert "StartTime" not in updated  # an update without times clears them, as AWS does

    aas.delete_scheduled_action(ScheduledActionName="nights", **TARGET)
    assert aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"] == []
    with pytest.raises(ClientError) as excinfo:
        aas.delete_scheduled_action(ScheduledActionName="nights", **TARGET)
    assert error_of(excinfo)[0] == "ObjectNotFoundException"


@pytest.mark.usefixtures("target")
@pytest.mark.parametrize(
    "extra",
    [
        {"Schedule": "cron(0 22 * * MON *)"},
        {"Schedule": "rate(0 minutes)"},
        {"Schedule": "at(2030-02-30T00:00:00)"},
        {"Schedule": "every day"},
        {"Schedule": "rate(1 day)", "Timezone": "Mars/Olympus"},
        {"Schedule": "rate(1 day)", "ScalableTargetAction": {"MinCapacity": 3, "MaxCapacity": 1}},
        {"Schedule": "rate(1 day)", "ScalableTargetAction": {}},
        {"ScalableTargetAction": {"MinCapacity": 1}},  # no Schedule for a new action
        {"Schedule": "rate(1 day)", "ScalableTargetAction": {"MinCapacity": 1},
         "StartTime": datetime(2031, 1, 1, tzinfo=UTC), "EndTime": datetime(2030, 1, 1, tzinfo=UTC)},
    ],
)  # fmt: skip
def test_bad_schedules_and_bounds_are_refused(aas: Any, extra: dict[str, Any]) -> None:
    params = {"ScalableTargetAction": {"MinCapacity": 1}, **extra}
    with pytest.raises(ClientError) as excinfo:
        aas.put_scheduled_action(ScheduledActionName="bad", **TARGET, **params)
    assert error_of(excinfo)[0] == "ValidationException"


def test_an_action_needs_a_registered_target(aas: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        aas.put_scheduled_action(ScheduledActionName="a", Schedule="rate(1 day)",
                                 ScalableTargetAction={"MinCapacity": 1}, **TARGET)  # fmt: skip
    assert error_of(excinfo)[0] == "ObjectNotFoundException"
