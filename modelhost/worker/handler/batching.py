"""Dynamic batching decisions (pure): when to send how many queued requests to the handler."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """DJL's dynamic batching settings."""

    batch_size: int = 1  # most requests per handler call (serving.properties `batch_size`)
    max_batch_delay_ms: int = 100  # longest wait after the first queued request for the batch to fill


@dataclass(frozen=True, slots=True)
class BatchDecision:
    """Send the first `take` queued requests now, or (take == 0) decide again after `wait_s` or an arrival."""

    take: int  # how many of the oldest queued requests form the next batch; 0 = not yet
    wait_s: float | None = None  # when take == 0: seconds until the delay runs out; None = wait for a request


def decide_batch(policy: BatchPolicy, arrivals_s: Sequence[float], now_s: float) -> BatchDecision:
    """Decide the next batch while the handler is free.

    `arrivals_s` are the queued requests' arrival times, oldest first, on the same clock as `now_s`.
    A full batch goes at once; otherwise the queue waits until `max_batch_delay_ms` after its oldest
    request, then everything queued (at most `batch_size`) goes. With batch_size 1 nothing ever waits.
    """
    if not arrivals_s:
        return BatchDecision(take=0, wait_s=None)
    if len(arrivals_s) >= policy.batch_size:
        return BatchDecision(take=policy.batch_size)
    deadline_s = arrivals_s[0] + policy.max_batch_delay_ms / 1000.0
    if now_s >= deadline_s:
        return BatchDecision(take=len(arrivals_s))
    return BatchDecision(take=0, wait_s=deadline_s - now_s)


def plan_batches(policy: BatchPolicy, arrivals_s: Sequence[float]) -> list[int]:
    """Batch sizes a never-busy handler would see for these arrival times; for reasoning and tests."""
    sizes: list[int] = []
    pending: list[float] = []
    upcoming = sorted(arrivals_s)
    now = upcoming[0] if upcoming else 0.0
    while upcoming or pending:
        while upcoming and upcoming[0] <= now:
            pending.append(upcoming.pop(0))
        decision = decide_batch(policy, pending, now)
        if decision.take:
            sizes.append(decision.take)
            del pending[: decision.take]
            continue
        next_arrival = upcoming[0] if upcoming else None
        deadline = now + decision.wait_s if decision.wait_s is not None else None
        candidates = [t for t in (next_arrival, deadline) if t is not None]
        now = min(candidates)
    return sizes
