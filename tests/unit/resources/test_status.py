"""The endpoint status table and the named transitions that use it."""

from __future__ import annotations

import pytest

from modelhost.resources.endpoint import FAILURE_REASON_MAX, PendingUpdate, VariantObservation, initial_state
from modelhost.resources.quota import instances_in_use
from modelhost.resources.status import TRANSITIONS, EndpointStatus, IllegalTransition, check_transition
from tests.fakes.records import NOW, endpoint, variant_spec

S = EndpointStatus
ALLOWED = {
    (S.CREATING, S.IN_SERVICE), (S.CREATING, S.FAILED), (S.CREATING, S.DELETING),
    (S.IN_SERVICE, S.UPDATING), (S.IN_SERVICE, S.FAILED), (S.IN_SERVICE, S.DELETING),
    (S.UPDATING, S.IN_SERVICE), (S.UPDATING, S.ROLLING_BACK), (S.UPDATING, S.FAILED), (S.UPDATING, S.DELETING),
    (S.ROLLING_BACK, S.IN_SERVICE), (S.ROLLING_BACK, S.FAILED), (S.ROLLING_BACK, S.DELETING),
    (S.FAILED, S.DELETING),
}  # fmt: skip


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("new", list(S))
def test_every_pair_of_statuses(current: EndpointStatus, new: EndpointStatus) -> None:
    if current == new or (current, new) in ALLOWED:
        check_transition(current, new)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, new)


def test_the_table_is_the_documented_one() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


def test_update_commit_takes_the_pending_configuration() -> None:
    new = variant_spec(model_name="m2")
    pending = PendingUpdate("cfg2", (new,), (initial_state(new.variant, NOW),), NOW)
    updating = endpoint(status=S.IN_SERVICE).begin_update(pending, NOW + 1)
    assert (updating.status, updating.pending) == (S.UPDATING, pending)
    done = updating.commit_update(NOW + 2)
    assert (done.status, done.config_name, done.variants, done.pending) == (S.IN_SERVICE, "cfg2", (new,), None)
    assert done.modified == NOW + 2


def test_rollback_keeps_the_reason_once_back_in_service() -> None:
    pending = PendingUpdate("cfg2", (), (), NOW)
    rolling = endpoint(status=S.IN_SERVICE).begin_update(pending, NOW).roll_back("Update rolled back: x" * 200, NOW)
    assert rolling.status == S.ROLLING_BACK and rolling.pending is None
    assert rolling.failure_reason is not None and len(rolling.failure_reason) == FAILURE_REASON_MAX
    back = rolling.back_in_service(NOW)
    assert back.status == S.IN_SERVICE and back.failure_reason == rolling.failure_reason


def test_creating_to_in_service_clears_status_lines_and_failure() -> None:
    created = endpoint(status=S.CREATING).back_in_service(NOW)
    assert created.status == S.IN_SERVICE and all(s.status is None for s in created.states)


def test_fail_zeroes_current_counts() -> None:
    observed = endpoint().with_observed({"AllTraffic": VariantObservation(instances=1, weight=1.0)}, NOW)
    failed = observed.fail("load failed: boom", NOW)
    assert (failed.status, failed.failure_reason, failed.states[0].current_count) == (S.FAILED, "load failed: boom", 0)


def test_illegal_moves_raise() -> None:
    with pytest.raises(IllegalTransition):
        endpoint(status=S.FAILED).back_in_service(NOW)
    with pytest.raises(IllegalTransition):
        endpoint(status=S.DELETING).fail("x", NOW)


def test_capacity_update_and_observations() -> None:
    ep = endpoint(status=S.IN_SERVICE).with_desired({"AllTraffic": (0.25, 3)}, NOW)
    state = ep.states[0]
    assert (ep.status, state.desired_weight, state.desired_count, state.status) == (S.UPDATING, 0.25, 3, "Updating")
    seen = ep.with_observed({"AllTraffic": VariantObservation(instances=3, weight=0.25, image="img")}, NOW)
    assert (seen.states[0].current_count, seen.states[0].deployed_image) == (3, "img")


def test_quota_use_counts_both_fleets_of_an_update_and_skips_finished_endpoints() -> None:
    pending_spec = variant_spec(count=2)
    pending = PendingUpdate("cfg2", (pending_spec,), (initial_state(pending_spec.variant, NOW),), NOW)
    updating = endpoint("a", status=S.IN_SERVICE).begin_update(pending, NOW)
    failed = endpoint("b", status=S.FAILED)
    assert instances_in_use([updating, failed]) == {"ml.m5.large": 3}
