from __future__ import annotations

import pytest

from modelhost.controller.scaling import ScaleDecision, decide_scale, restart_delay_s


@pytest.mark.parametrize(
    ("desired", "serving", "starting", "expected"),
    [
        (2, ["a"], 0, ScaleDecision(1, ())),
        (2, ["a"], 1, ScaleDecision(0, ())),
        (1, ["a", "b", "c"], 0, ScaleDecision(0, ("c", "b"))),
        (1, ["a", "b"], 1, ScaleDecision(0, ("b",))),
        (0, ["a"], 0, ScaleDecision(0, ("a",))),
        (3, [], 0, ScaleDecision(3, ())),
        (2, ["a", "b"], 0, ScaleDecision(0, ())),
    ],
)
def test_decide_scale(desired: int, serving: list[str], starting: int, expected: ScaleDecision) -> None:
    assert decide_scale(desired, serving, starting) == expected


def test_restart_backoff_grows_and_caps() -> None:
    assert [restart_delay_s(n) for n in (0, 1, 2, 3, 4)] == [0.0, 0.0, 1.0, 2.0, 4.0]
    assert restart_delay_s(30) == 60.0
