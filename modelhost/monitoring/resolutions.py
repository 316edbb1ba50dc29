"""The store's bucket sizes and retention, CloudWatch's period rules, and which resolution answers a query (pure).

Like CloudWatch, high-resolution data is kept 3 hours, minute data 15 days and hourly data 455 days. The finest
bucket here is 10 s, so a Period of 1 or 5 seconds (which CloudWatch allows for high-resolution metrics) is refused
with a message naming the periods that can be answered.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR_S = 3600
DAY_S = 86400


@dataclass(frozen=True, slots=True)
class Resolution:
    seconds: int  # bucket width; every bucket starts at a multiple of it (epoch seconds)
    retention_s: int  # buckets older than this are removed by prune()

    @property
    def table(self) -> str:
        return f"points_{self.seconds}"

    def bucket(self, timestamp_s: float) -> int:
        """The start of the bucket holding `timestamp_s`."""
        return int(timestamp_s // self.seconds) * self.seconds


HIGH = Resolution(10, 3 * HOUR_S)
MINUTE = Resolution(60, 15 * DAY_S)
HOURLY = Resolution(3600, 455 * DAY_S)
RESOLUTIONS: tuple[Resolution, ...] = (HIGH, MINUTE, HOURLY)  # finest first

SUB_MINUTE_PERIODS = (1, 5, 10, 20, 30)  # CloudWatch's high-resolution periods


def period_problem(period_s: int) -> str | None:
    """Why `period_s` cannot be asked for (CloudWatch's rule, then what this store keeps); None when it can."""
    if period_s < 1:
        return "The parameter Period must be greater than 0."
    if period_s % 60 and period_s not in SUB_MINUTE_PERIODS:
        return "The parameter Period must be a multiple of 60, or one of 1, 5, 10, 20 or 30 for high-resolution data."
    if period_s % HIGH.seconds and period_s % 60:
        return (
            f"modelhost keeps high-resolution data in {HIGH.seconds}-second buckets, so a Period of {period_s} "
            "seconds cannot be answered; use 10, 20, 30 or a multiple of 60."
        )
    return None


def choose_resolution(start_s: float, period_s: int, now_s: float) -> Resolution:
    """The finest resolution whose buckets divide the period and whose retention still covers `start_s`.

    When none covers the start (the range reaches back past every dividing resolution's retention), the
    dividing resolution kept longest answers, with the data it still has, as CloudWatch does. The period must
    have passed `period_problem`.
    """
    dividing = [r for r in RESOLUTIONS if period_s % r.seconds == 0]
    for resolution in dividing:
        if start_s >= now_s - resolution.retention_s:
            return resolution
    return max(dividing, key=lambda r: r.retention_s)


def aligned_start(start_s: float, period_s: int, resolution: Resolution, now_s: float) -> int:
    """Where the first period begins, rounded down as CloudWatch rounds StartTime: to an even division of a minute
    for sub-minute periods, else to the minute (start within 15 days), 5 minutes (63 days) or the hour; and never
    inside a bucket of the chosen resolution."""
    if period_s < 60:
        unit = period_s
    elif start_s >= now_s - 15 * DAY_S:
        unit = 60
    elif start_s >= now_s - 63 * DAY_S:
        unit = 300
    else:
        unit = HOUR_S
    unit = max(unit, resolution.seconds)
    return int(start_s // unit) * unit


def periods_between(start_s: float, end_s: float, period_s: int) -> int:
    """How many periods a range spans (CloudWatch's datapoint count for its 1,440 limit)."""
    span = max(0.0, end_s - start_s)
    return int(-(-span // period_s))
