"""The rate and quantile math of `modelhost top` over synthetic scrapes, checked against Prometheus' rules."""

from __future__ import annotations

import math

import pytest

from modelhost.cli.scrape import (
    bucket_increases_by,
    counter_increase,
    histogram_quantile,
    increases_by,
    parse_scrape,
    sums_by,
)

BY = ("endpoint", "variant")


def exposition(invocations: dict[tuple[str, str], float]) -> str:
    lines = ["# HELP modelhost_invocations_total Requests.", "# TYPE modelhost_invocations_total counter"]
    for (endpoint, variant), value in invocations.items():
        lines.append(f'modelhost_invocations_total{{endpoint="{endpoint}",variant="{variant}"}} {value}')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (10.0, 15.0, 5.0),  # growth
        (10.0, 10.0, 0.0),  # idle
        (10.0, 3.0, 3.0),  # reset (server restarted) then 3 more: Prometheus counts the new value
        (None, 4.0, 4.0),  # a series first seen: it started at zero
        (7.0, 0.0, 0.0),  # reset with nothing since
    ],
)
def test_counter_increase_follows_prometheus_resets(previous: float | None, current: float, expected: float) -> None:
    assert counter_increase(previous, current) == expected


def test_parse_scrape_keys_series_by_sorted_labels() -> None:
    scrape = parse_scrape(exposition({("a", "AllTraffic"): 3}), at_s=5.0)
    assert scrape.at_s == 5.0
    assert scrape.series("modelhost_invocations_total") == {(("endpoint", "a"), ("variant", "AllTraffic")): 3.0}
    assert scrape.series("absent") == {}


def test_parse_scrape_refuses_what_is_not_the_text_format() -> None:
    with pytest.raises(ValueError):
        parse_scrape('modelhost_invocations_total{endpoint="a" 3\n', at_s=0.0)


def test_increases_sum_per_variant_across_instances_resets_and_new_series() -> None:
    def series(values: dict[str, float]) -> dict[tuple[tuple[str, str], ...], float]:
        return {(("endpoint", "e"), ("instance", i), ("variant", "v")): x for i, x in values.items()}

    before = series({"i-0": 100.0, "i-1": 50.0, "i-gone": 9.0})
    after = series({"i-0": 130.0, "i-1": 5.0, "i-new": 7.0})  # i-1 restarted, i-new appeared, i-gone stopped
    assert increases_by(before, after, BY) == {("e", "v"): 30.0 + 5.0 + 7.0}


def test_whole_server_restart_counts_what_came_after_it() -> None:
    before = parse_scrape(exposition({("a", "v"): 1000, ("b", "v"): 20}), at_s=0.0)
    after = parse_scrape(exposition({("a", "v"): 4, ("b", "v"): 2}), at_s=2.0)
    name = "modelhost_invocations_total"
    assert increases_by(before.series(name), after.series(name), BY) == {("a", "v"): 4.0, ("b", "v"): 2.0}


def test_sums_by_adds_gauges_over_instances() -> None:
    series = {
        (("endpoint", "e"), ("instance", "0"), ("variant", "v")): 25.0,
        (("endpoint", "e"), ("instance", "1"), ("variant", "v")): 75.0,
        (("endpoint", "f"), ("instance", "0"), ("variant", "v")): 10.0,
    }
    assert sums_by(series, BY) == {("e", "v"): 100.0, ("f", "v"): 10.0}


def buckets(le_counts: dict[str, float], endpoint: str = "e") -> dict[tuple[tuple[str, str], ...], float]:
    return {(("endpoint", endpoint), ("le", le), ("variant", "v")): n for le, n in le_counts.items()}


def test_bucket_increases_are_per_bucket_and_sorted_by_bound() -> None:
    before = buckets({"0.1": 10, "0.5": 20, "+Inf": 20})
    after = buckets({"+Inf": 30, "0.5": 28, "0.1": 12})
    assert bucket_increases_by(before, after, BY) == {("e", "v"): [(0.1, 2.0), (0.5, 8.0), (math.inf, 10.0)]}


def test_bucket_increases_ignore_series_without_le() -> None:
    assert bucket_increases_by({}, {(("endpoint", "e"), ("variant", "v")): 3.0}, BY) == {}


# Expected values computed by hand with Prometheus' bucketQuantile (promql/quantile.go).
CUMULATIVE = [(0.1, 10.0), (0.5, 30.0), (1.0, 36.0), (math.inf, 40.0)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.1 + 0.4 * (20 - 10) / 20),  # rank 20 in (0.1, 0.5]: 10 of its 20
        (0.25, 0.1 * 10 / 10),  # rank 10: the top of the first bucket
        (0.1, 0.1 * 4 / 10),  # first bucket interpolates from 0
        (0.85, 0.5 + 0.5 * (34 - 30) / 6),
        (0.99, 1.0),  # rank 39.6 falls in +Inf: the highest finite bound
        (1.0, 1.0),
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    assert histogram_quantile(q, CUMULATIVE) == pytest.approx(expected)


def test_histogram_quantile_without_an_answer() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None  # no observations
    assert histogram_quantile(0.5, [(0.1, 3.0), (1.0, 5.0)]) is None  # no +Inf bucket
    assert histogram_quantile(0.5, [(math.inf, 5.0)]) is None  # one bucket only


def test_histogram_quantile_edges() -> None:
    assert histogram_quantile(-0.1, CUMULATIVE) == -math.inf
    assert histogram_quantile(1.5, CUMULATIVE) == math.inf
    assert histogram_quantile(0.0, [(0.1, 0.0), (0.5, 4.0), (math.inf, 4.0)]) == 0.0
    # counts that fall (a bucket reset alone between scrapes) are forced monotonic, as Prometheus does
    # (0.5's 2 becomes 4: the rank 4 is reached at the top of the first bucket)
    assert histogram_quantile(0.5, [(0.1, 4.0), (0.5, 2.0), (math.inf, 8.0)]) == pytest.approx(0.1)
    assert histogram_quantile(0.75, [(0.1, 4.0), (0.5, 2.0), (1.0, 8.0), (math.inf, 8.0)]) == pytest.approx(0.75)
    # a first bucket with a bound <= 0 answers its bound
    assert histogram_quantile(0.1, [(0.0, 5.0), (1.0, 10.0), (math.inf, 10.0)]) == 0.0
