"""The fleet simulation (benchmarks/scaling_simulation.py) in small: deterministic, bounded, and both scalers
meet a steady demand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks import scaling_simulation as sim

SMALL = sim.Fleet(endpoints=10, hours=3.0, seed=3)
Results = dict[str, dict[str, sim.Totals]]


@pytest.fixture(scope="module")
def results() -> Results:
    return sim.simulate(SMALL)


def test_deterministic_for_a_seed(results: Results) -> None:
    assert sim.simulate(SMALL) == results
    assert sim.simulate(replace(SMALL, seed=4)) != results


def test_the_shortcut_changes_no_decision(results: Results) -> None:
    assert sim.simulate(replace(SMALL, shortcut=False)) == results


def test_never_more_than_a_fixed_max_fleet_and_every_request_accounted(results: Results) -> None:
    fixed_s = SMALL.endpoints * SMALL.max_instances * SMALL.hours * 3600.0
    for by_pattern in results.values():
        total = by_pattern["all"]
        assert 0 < total.instance_s <= fixed_s
        assert total.requests > 0
        assert total.cold_waits + total.throttled <= total.requests
        assert sum(by_pattern[p].requests for p in sim.PATTERNS) == total.requests


def test_scale_to_zero_uses_fewer_instance_hours_and_only_it_makes_requests_wait_for_a_cold_start(
    results: Results,
) -> None:
    zero, one, sagemaker = (results[s.name]["all"] for s in sim.SCALERS)
    assert zero.instance_s < one.instance_s
    assert zero.instance_s < sagemaker.instance_s
    assert zero.cold_waits > 0
    assert one.cold_waits == 0 and sagemaker.cold_waits == 0


def test_both_meet_a_steady_demand() -> None:
    fleet = replace(SMALL, hours=2.0)
    rate = 5.0  # requests per second: 3 instances at the target (1.4 rps each), 2.5 at full capacity (2 rps)
    arrivals = [int(rate * fleet.tick_s)] * fleet.ticks
    warm = 360  # the first hour: both have scaled out by then
    for scaler in sim.SCALERS:
        head = sim.simulate_endpoint(arrivals[:warm], scaler, fleet)
        whole = sim.simulate_endpoint(arrivals, scaler, fleet)
        assert whole.throttled == head.throttled, scaler.name  # nothing throttled once scaled out
        assert whole.delayed == head.delayed, scaler.name  # and nothing waits a tick
        steady_instances = (whole.instance_s - head.instance_s) / ((fleet.ticks - warm) * fleet.tick_s)
        assert steady_instances == 4.0, scaler.name  # ceil(5 / 1.4): at the target, not above it


def test_modelhost_reacts_to_a_step_before_sagemaker() -> None:
    fleet = replace(SMALL, hours=1.0)
    arrivals = [10] * 60 + [60] * (fleet.ticks - 60)  # 1 rps for 10 minutes, then 6 rps
    zero, _, sagemaker = (sim.simulate_endpoint(arrivals, s, fleet) for s in sim.SCALERS)
    assert zero.throttled + zero.delayed < sagemaker.throttled + sagemaker.delayed
