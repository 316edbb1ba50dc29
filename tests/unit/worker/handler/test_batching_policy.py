"""The dynamic batching decision, as pure logic over arrival times."""

from __future__ import annotations

import pytest

from modelhost.worker.handler.batching import BatchDecision, BatchPolicy, decide_batch, plan_batches

POLICY = BatchPolicy(batch_size=4, max_batch_delay_ms=200)


@pytest.mark.parametrize(
    ("arrivals", "now", "expected"),
    [
        ([], 0.0, BatchDecision(take=0, wait_s=None)),
        ([0.0], 0.0, BatchDecision(take=0, wait_s=0.2)),
        ([0.0, 0.05], 0.1, BatchDecision(take=0, wait_s=pytest.approx(0.1))),
        ([0.0, 0.05], 0.2, BatchDecision(take=2)),
        ([0.0, 0.01, 0.02, 0.03], 0.03, BatchDecision(take=4)),
        ([0.0] * 6, 0.0, BatchDecision(take=4)),
    ],
)
def test_decide_batch(arrivals: list[float], now: float, expected: BatchDecision) -> None:
    assert decide_batch(POLICY, arrivals, now) == expected


def test_batch_size_one_never_waits() -> None:
    assert decide_batch(BatchPolicy(batch_size=1, max_batch_delay_ms=100), [5.0], 5.0) == BatchDecision(take=1)


@pytest.mark.parametrize(
    ("arrivals", "sizes"),
    [
        ([0.0, 0.01, 0.02, 0.03], [4]),
        ([0.0, 0.01, 0.02, 0.03, 0.04], [4, 1]),
        ([0.0, 0.5], [1, 1]),
        ([0.0, 0.1, 0.19, 0.25], [3, 1]),
        ([], []),
    ],
)
def test_plan_batches(arrivals: list[float], sizes: list[int]) -> None:
    assert plan_batches(POLICY, arrivals) == sizes
