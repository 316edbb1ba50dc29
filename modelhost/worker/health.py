"""Whether a serving worker is healthy (pure): a handler call or an engine step stuck far past its bound.

`GET /ping` answers 503 with the reason while these say unhealthy; the control plane replaces an instance
that fails its pings several times in a row. A call that finishes makes the worker healthy again.
"""

from __future__ import annotations

from dataclasses import dataclass

HANDLER_GRACE_S = 1.0  # a handler call may overrun its predict_timeout this long before the worker is unhealthy
ENGINE_STEP_BOUND_S = 600.0  # one engine step (a forward pass) running longer than this is a hang, not slowness


@dataclass(frozen=True, slots=True)
class Health:
    """The answer /ping gives: healthy, or not and why (one line, for the endpoint's log and the caller)."""

    healthy: bool
    reason: str | None = None

    def body(self) -> dict[str, str]:
        if self.healthy:
            return {"status": "healthy"}
        return {"status": "unhealthy", "reason": self.reason or "unhealthy"}


HEALTHY = Health(True)


def handler_health(
    busy_since_s: float | None, timeout_s: float | None, now_s: float, grace_s: float = HANDLER_GRACE_S
) -> Health:
    """The handler thread's health: unhealthy while the call it runs (started at `busy_since_s`, allowed
    `timeout_s`) is more than `grace_s` past its deadline at `now_s`. An idle thread (`busy_since_s` None)
    or a call without a deadline (`timeout_s` None) is healthy."""
    if busy_since_s is None or timeout_s is None:
        return HEALTHY
    overrun_s = now_s - busy_since_s - timeout_s
    if overrun_s <= grace_s:
        return HEALTHY
    return Health(
        False,
        f"handler busy {overrun_s:.1f} s past its {timeout_s:g} s predict_timeout "
        "(option.predict_timeout); the call has not returned",
    )


def engine_health(step_running_s: float | None, bound_s: float = ENGINE_STEP_BOUND_S) -> Health:
    """The engine thread's health: unhealthy while its current step has run longer than `bound_s`.
    `step_running_s` is None (or 0) when no step is running, or when the backend does not report it."""
    if not step_running_s or step_running_s <= bound_s:
        return HEALTHY
    return Health(
        False, f"engine step running for {step_running_s:.1f} s (more than {bound_s:g} s): the engine is stuck"
    )
