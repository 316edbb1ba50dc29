"""Dispatch decisions and backlog metrics (pure)."""

from __future__ import annotations

from modelhost.async_inference.decide import (
    MAX_ENDINGS_PER_PASS,
    Backlog,
    EndpointView,
    Waiting,
    backlog_of,
    plan,
    refusal_of,
)
from modelhost.async_inference.metrics import backlog_datapoints, backlog_values


def view(**changes: object) -> EndpointView:
    base: dict[str, object] = {"name": "ep", "refusal": None, "instances": 2, "per_instance": 2, "running": 0}
    return EndpointView(**{**base, **changes})  # type: ignore[arg-type]


def waiting(count: int, expires: float = 1e12) -> list[Waiting]:
    return [Waiting(f"k{i}", float(i), expires) for i in range(count)]


def test_oldest_first_up_to_per_instance_times_instances() -> None:
    assert plan(view(), waiting(10), 100.0).start == ("k0", "k1", "k2", "k3")
    assert plan(view(running=3), waiting(10), 100.0).start == ("k0",)
    assert plan(view(running=9), waiting(10), 100.0).start == ()


def test_at_zero_instances_one_instance_worth_is_sent_so_admission_starts_one() -> None:
    assert plan(view(instances=0, per_instance=3), waiting(10), 100.0).start == ("k0", "k1", "k2")


def test_expired_requests_fail_even_without_room_and_do_not_start() -> None:
    items = [Waiting("old", 0.0, 50.0), Waiting("new", 1.0, 500.0)]
    result = plan(view(running=4), items, 100.0)
    assert result.expire == ("old",) and result.start == ()
    assert plan(view(), items, 100.0).start == ("new",)


def test_back_off_holds_new_starts() -> None:
    assert plan(view(not_before=200.0), waiting(3), 100.0).start == ()
    assert plan(view(not_before=50.0), waiting(3), 100.0).start == ("k0", "k1", "k2")


def test_a_gone_endpoint_fails_its_whole_queue_with_the_reason() -> None:
    reason = refusal_of("ep", None, False)
    assert reason is not None and "deleted" in reason
    result = plan(view(refusal=reason), waiting(3), 100.0)
    assert result.fail == ("k0", "k1", "k2") and result.fail_reason == reason and result.start == ()
    assert refusal_of("ep", "Failed", True) is not None and "Failed" in str(refusal_of("ep", "Failed", True))
    assert "asynchronous" in str(refusal_of("ep", "InService", False))
    assert refusal_of("ep", "InService", True) is None and refusal_of("ep", "Creating", True) is None


def test_a_creating_endpoint_holds_its_requests_but_their_ttl_still_runs() -> None:
    items = [Waiting("old", 0.0, 50.0), Waiting("new", 1.0, 500.0)]
    result = plan(view(holding=True, instances=0), items, 100.0)
    assert result.start == () and result.expire == ("old",)


def test_a_request_that_had_started_before_a_restart_does_not_expire() -> None:
    result = plan(view(), [Waiting("cut", 0.0, 50.0, started_before=True)], 100.0)
    assert result.start == ("cut",) and result.expire == ()


def test_endings_per_pass_are_bounded_and_count_as_in_flight() -> None:
    reason = refusal_of("ep", None, True)
    many = waiting(1000)
    assert len(plan(view(refusal=reason), many, 100.0).fail) == MAX_ENDINGS_PER_PASS
    assert len(plan(view(refusal=reason, running=60), many, 100.0).fail) == MAX_ENDINGS_PER_PASS - 60
    expired = waiting(1000, expires=10.0)
    assert len(plan(view(), expired, 100.0).expire) == MAX_ENDINGS_PER_PASS


def test_backlog_metrics() -> None:
    values = backlog_values(Backlog("ep", 6, 90.0, 3), 100.0)
    assert values["ApproximateBacklogSize"] == (6.0, "None")
    assert values["ApproximateBacklogSizePerInstance"] == (2.0, "None")
    assert values["ApproximateAgeOfOldestRequest"] == (10.0, "Seconds")
    assert values["HasBacklogWithoutCapacity"] == (0.0, "None")
    at_zero = backlog_values(backlog_of("ep", [95.0, 99.0], 0), 100.0)
    assert at_zero["HasBacklogWithoutCapacity"][0] == 1.0 and at_zero["ApproximateBacklogSizePerInstance"][0] == 2.0
    empty = backlog_values(backlog_of("ep", [], 0), 100.0)
    assert empty["HasBacklogWithoutCapacity"][0] == 0.0 and empty["ApproximateAgeOfOldestRequest"][0] == 0.0
    points = backlog_datapoints([Backlog("ep", 1, 99.0, 1)], 100.0)
    assert {p.metric.metric_name for p in points} == set(values)
    assert all(p.metric.namespace == "AWS/SageMaker" and p.metric.dimensions == (("EndpointName", "ep"),)
               and p.high_resolution for p in points)  # fmt: skip
