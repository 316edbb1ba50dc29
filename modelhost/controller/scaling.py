"""Pure decisions of the control loop: how many instances to start or stop, and restart backoff."""

from __future__ import annotations

from dataclasses import dataclass

CRASH_LOOP_FAILURES = 3  # consecutive instance failures that make a variant "crash looping"
MAX_RESTART_DELAY_S = 60.0


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    start: int  # instances to start now
    stop: tuple[str, ...]  # instance ids to drain and stop, newest first


def decide_scale(desired: int, serving: list[str], starting: int) -> ScaleDecision:
    """Start what is missing, counting instances already starting; stop the newest surplus ones first.

    `serving` lists healthy instance ids oldest first; `starting` counts instances not yet healthy. Serving
    instances are never stopped to make room for starting ones (those may still fail).
    """
    have = len(serving) + starting
    if have < desired:
        return ScaleDecision(start=desired - have, stop=())
    surplus = len(serving) - desired
    if surplus > 0:
        return ScaleDecision(start=0, stop=tuple(reversed(serving[-surplus:])))
    return ScaleDecision(start=0, stop=())


def restart_delay_s(consecutive_failures: int) -> float:
    """Backoff before replacing an instance: 0 for the first failure, then 1, 2, 4 … up to a minute."""
    if consecutive_failures <= 1:
        return 0.0
    return min(MAX_RESTART_DELAY_S, 2.0 ** (consecutive_failures - 2))
