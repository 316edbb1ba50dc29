"""One Prometheus scrape of the server's /metrics as plain data, and the rate math over two of them (pure).

The rules are Prometheus' own, for two samples of each series: a counter that went down was reset (the server
restarted), so its increase is its new value; a series absent from the earlier scrape started at zero (counters
are created at their first increment, and a new worker's start from zero). Quantiles follow `histogram_quantile`
over the per-bucket increases (linear interpolation inside the bucket the rank falls in).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]  # a series' labels, sorted by name
Series = Mapping[Labels, float]  # one metric's series: labels -> value


@dataclass(frozen=True, slots=True)
class Scrape:
    """Every sample of one exposition, taken at `at_s` (a monotonic clock's seconds)."""

    at_s: float
    samples: Mapping[str, Series]  # sample name (e.g. modelhost_invocations_total) -> its series

    def series(self, name: str) -> Series:
        return self.samples.get(name, {})


def parse_scrape(text: str, at_s: float) -> Scrape:
    """The exposition `text` as a Scrape; raises ValueError when it is not the Prometheus text format."""
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = float(sample.value)
    return Scrape(at_s, samples)


def counter_increase(previous: float | None, current: float) -> float:
    """How much a counter grew between two samples: a drop is a reset (counting again from zero) and a series
    not sampled before started at zero."""
    if previous is None or current < previous:
        return current
    return current - previous


def label(labels: Labels, name: str) -> str:
    return next((value for key, value in labels if key == name), "")


def group_key(labels: Labels, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(label(labels, name) for name in names)


def increases_by(before: Series, after: Series, names: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """Each series' increase from `before` to `after`, summed by the values of the labels `names`. Series only in
    `before` are gone (a stopped worker) and add nothing."""
    totals: dict[tuple[str, ...], float] = {}
    for labels, value in after.items():
        key = group_key(labels, names)
        totals[key] = totals.get(key, 0.0) + counter_increase(before.get(labels), value)
    return totals


def sums_by(series: Series, names: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """The series' values (gauges, or counters' totals) summed by the values of the labels `names`."""
    totals: dict[tuple[str, ...], float] = {}
    for labels, value in series.items():
        key = group_key(labels, names)
        totals[key] = totals.get(key, 0.0) + value
    return totals


def _bound(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def bucket_increases_by(
    before: Series, after: Series, names: tuple[str, ...]
) -> dict[tuple[str, ...], list[tuple[float, float]]]:
    """A histogram's `_bucket` series as (upper bound, increase) lists per group of `names`, sorted by bound; the
    buckets of a group's series with the same bound are added together (sum by (le) in PromQL)."""
    grouped: dict[tuple[str, ...], dict[float, float]] = {}
    for labels, value in after.items():
        le = label(labels, "le")
        if not le:
            continue
        buckets = grouped.setdefault(group_key(labels, names), {})
        bound = _bound(le)
        buckets[bound] = buckets.get(bound, 0.0) + counter_increase(before.get(labels), value)
    return {key: sorted(buckets.items()) for key, buckets in grouped.items()}


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative buckets [(upper bound, count)], as Prometheus' histogram_quantile computes it;
    None where it has no answer (no observations, no +Inf bucket, fewer than two buckets)."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][0] != math.inf or len(ordered) < 2:
        return None
    bounds = [bound for bound, _ in ordered]
    counts: list[float] = []
    for _, count in ordered:  # cumulative counts never fall (Prometheus forces them monotonic)
        counts.append(max(count, counts[-1]) if counts else count)
    observations = counts[-1]
    if observations <= 0:
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * observations
    b = next(i for i, count in enumerate(counts) if count >= rank)  # the +Inf bucket always qualifies
    if b == len(counts) - 1:
        return bounds[-2]  # in the +Inf bucket: the highest finite bound
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = bounds[b - 1] if b > 0 else 0.0
    below = counts[b - 1] if b > 0 else 0.0
    in_bucket = counts[b] - below
    if in_bucket <= 0:  # only for q = 0 with an empty first bucket (NaN in Prometheus)
        return start
    return start + (bounds[b] - start) * ((rank - below) / in_bucket)
