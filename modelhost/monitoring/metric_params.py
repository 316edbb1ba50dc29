"""Parameters the Get operations share, checked with CloudWatch's codes and words (pure)."""

from __future__ import annotations

from typing import Any

from modelhost.monitoring.datapoints import STATISTICS, MetricIdentity, dimensions_of
from modelhost.monitoring.errors import InvalidParameterValue
from modelhost.monitoring.resolutions import period_problem


def metric_identity(namespace: str, metric_name: str, dimensions: list[dict[str, Any]] | None) -> MetricIdentity:
    """A request's metric; its dimensions are compared exactly with the stored ones."""
    pairs = [(d["Name"], d["Value"]) for d in dimensions or []]
    return MetricIdentity(namespace, metric_name, dimensions_of(pairs))


def check_time_range(start_s: float, end_s: float) -> None:
    if start_s >= end_s:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")


def check_period(period_s: int, name: str = "Period") -> None:
    problem = period_problem(period_s)
    if problem is not None:
        raise InvalidParameterValue(problem.replace("The parameter Period", f"The parameter {name}"))


def check_statistic(stat: str, name: str) -> None:
    """Only the statistics a statistic set gives; percentiles and trimmed means are refused by name."""
    if stat in STATISTICS:
        return
    raise InvalidParameterValue(
        f"The value {stat[:50]} for parameter {name} is not supported: modelhost keeps statistic sets "
        "(SampleCount, Sum, Minimum, Maximum), not the samples that percentile and trimmed statistics need. "
        "Use one of SampleCount, Average, Sum, Minimum or Maximum."
    )
