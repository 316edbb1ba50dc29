"""Continuous-batching scheduler: admission by slots and KV budget, FIFO waiting, leaving at once, abort."""

from __future__ import annotations

import pytest

from modelhost.worker.engine.scheduler import Scheduler, SchedulerConfig, StepPlan, StepResult


def make(max_batch_size: int = 4, budget: int = 1000, step_tokens: int = 1000) -> Scheduler:
    return Scheduler(SchedulerConfig(max_batch_size, budget, step_tokens))


def run_step(scheduler: Scheduler, finished: set[int] = frozenset()) -> StepPlan:
    plan = scheduler.schedule()
    scheduler.update(plan, StepResult(frozenset(finished)))
    return plan


def test_new_request_prefills_then_decodes_at_its_positions() -> None:
    scheduler = make()
    scheduler.add(1, prompt_tokens=5, max_new_tokens=3)
    plan = run_step(scheduler)
    assert [(c.seq_id, c.start, c.length, c.last) for c in plan.prefills] == [(1, 0, 5, True)]
    assert plan.decodes == ()
    plan = run_step(scheduler)
    assert [(d.seq_id, d.position) for d in plan.decodes] == [(1, 5)]
    assert [(d.seq_id, d.position) for d in run_step(scheduler).decodes] == [(1, 6)]


def test_request_joins_running_batch_at_next_step() -> None:
    scheduler = make()
    scheduler.add(1, 4, 10)
    run_step(scheduler)
    scheduler.add(2, 3, 10)
    plan = run_step(scheduler)
    assert [c.seq_id for c in plan.prefills] == [2]
    assert [d.seq_id for d in plan.decodes] == [1]
    assert {d.seq_id for d in scheduler.schedule().decodes} == {1, 2}


def test_batch_size_bounds_admission_and_the_rest_wait_in_order() -> None:
    scheduler = make(max_batch_size=2)
    for seq_id in (1, 2, 3, 4):
        scheduler.add(seq_id, 4, 4)
    plan = run_step(scheduler)
    assert [c.seq_id for c in plan.prefills] == [1, 2]
    assert (scheduler.num_running, scheduler.num_waiting) == (2, 2)
    plan = run_step(scheduler, finished={1})
    assert scheduler.num_running == 1
    plan = run_step(scheduler)
    assert [c.seq_id for c in plan.prefills] == [3]


def test_kv_budget_reserves_prompt_plus_max_new_tokens() -> None:
    scheduler = make(max_batch_size=8, budget=100)
    scheduler.add(1, 30, 30)  # 60
    scheduler.add(2, 20, 30)  # 50: does not fit next to 60
    scheduler.add(3, 5, 5)  # fits, but waits behind 2 (FIFO)
    plan = run_step(scheduler)
    assert [c.seq_id for c in plan.prefills] == [1]
    assert scheduler.reserved_tokens == 60
    assert scheduler.num_waiting == 2
    run_step(scheduler, finished={1})
    assert scheduler.reserved_tokens == 0
    plan = run_step(scheduler)
    assert [c.seq_id for c in plan.prefills] == [2, 3]
    assert scheduler.reserved_tokens == 60


def test_request_larger_than_the_whole_budget_is_refused_not_lost() -> None:
    scheduler = make(budget=10)
    with pytest.raises(ValueError, match="budget"):
        scheduler.add(1, 8, 8)


def test_finished_sequence_leaves_at_once_and_frees_its_slot() -> None:
    scheduler = make(max_batch_size=1)
    scheduler.add(1, 3, 5)
    scheduler.add(2, 3, 5)
    first = run_step(scheduler, finished={1})
    assert first.prefills[0].slot == 0
    assert scheduler.num_running == 0
    plan = run_step(scheduler)
    assert [(c.seq_id, c.slot) for c in plan.prefills] == [(2, 0)]


def test_abort_frees_running_slot_and_drops_waiting() -> None:
    scheduler = make(max_batch_size=1, budget=100)
    scheduler.add(1, 3, 5)
    scheduler.add(2, 3, 5)
    scheduler.add(3, 3, 5)
    run_step(scheduler)
    assert scheduler.abort(1) == 0
    assert scheduler.abort(2) is None
    assert scheduler.reserved_tokens == 0
    plan = scheduler.schedule()
    assert [c.seq_id for c in plan.prefills] == [3]
    assert scheduler.abort(99) is None


def test_long_prompt_is_chunked_and_decodes_keep_running() -> None:
    scheduler = make(step_tokens=8)
    scheduler.add(1, 2, 50)
    run_step(scheduler)
    scheduler.add(2, 20, 5)
    chunks = []
    for _ in range(3):
        plan = run_step(scheduler)
        assert [d.seq_id for d in plan.decodes] == [1]
        chunks += [(c.start, c.length, c.last) for c in plan.prefills]
    assert chunks == [(0, 8, False), (8, 8, False), (16, 4, True)]
    assert {d.seq_id for d in scheduler.schedule().decodes} == {1, 2}


def test_lowest_free_slot_is_reused() -> None:
    scheduler = make(max_batch_size=3)
    for seq_id in (1, 2, 3):
        scheduler.add(seq_id, 2, 2)
    run_step(scheduler, finished={2})
    scheduler.add(4, 2, 2)
    plan = run_step(scheduler)
    assert [(c.seq_id, c.slot) for c in plan.prefills] == [(4, 1)]


def test_tokens_already_in_the_slot_at_admission_are_not_prefilled() -> None:
    admitted: list[tuple[int, int]] = []

    def on_admit(seq_id: int, slot: int) -> int:
        admitted.append((seq_id, slot))
        return {1: 16, 2: 99}[seq_id]  # 2 claims more than its prompt: at most prompt - 1 count

    scheduler = Scheduler(SchedulerConfig(4, 1000, 10), on_admit=on_admit)
    scheduler.add(1, 30, 5)
    scheduler.add(2, 8, 5)
    chunks = []
    for _ in range(2):
        chunks += [(c.seq_id, c.start, c.length, c.last) for c in run_step(scheduler).prefills]
    assert admitted == [(1, 0), (2, 1)]
    # the step budget (10 tokens) is spent on uncached tokens only: 1's 14 take two steps, 2's one token waits
    assert chunks == [(1, 16, 10, False), (1, 26, 4, True), (2, 7, 1, True)]
    assert scheduler.reserved_tokens == 35 + 13  # reservations still cover the whole sequence
