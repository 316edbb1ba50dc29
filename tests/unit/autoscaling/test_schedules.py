"""at/rate/cron schedules: what is accepted, what is refused, and when each runs next."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from modelhost.autoscaling.schedules import ScheduleError, next_run, parse_schedule, time_zone

AFTER = datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC).timestamp()  # a Sunday


def at(*args: int, tz: object = UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[arg-type, misc]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("at(2030-04-01T08:00:00)", at(2030, 4, 1, 8, 0)),
        ("at(2030-01-01T00:00:00)", None),  # already past
        ("cron(0 18 ? * MON-FRI *)", at(2030, 3, 18, 18, 0)),
        ("cron(15 10 L * ? *)", at(2030, 3, 31, 10, 15)),
        ("cron(0 9 ? * 6#3 *)", at(2030, 4, 19, 9, 0)),  # third Friday of April
        ("cron(0 9 ? * 2L *)", at(2030, 3, 25, 9, 0)),  # last Monday of March
        ("cron(0 9 15W * ? *)", at(2030, 4, 15, 9, 0)),  # the 15th is a Monday in April
        ("cron(*/15 * * * ? 2030)", at(2030, 3, 17, 18, 0)),
        ("cron(0 0 1 JAN ? 2029)", None),  # a year gone by
    ],
)
def test_next_run(schedule: str, expected: float | None) -> None:
    assert next_run(parse_schedule(schedule), AFTER) == expected


def test_rate_counts_from_its_anchor() -> None:
    schedule = parse_schedule("rate(5 minutes)")
    assert next_run(schedule, AFTER, anchor=AFTER - 60) == AFTER + 240
    assert next_run(schedule, AFTER, anchor=AFTER + 10) == AFTER + 10
    assert parse_schedule("rate(1 day)").rate_s == 86400


def test_at_and_cron_read_in_the_time_zone() -> None:
    paris = time_zone("Europe/Paris")
    assert next_run(parse_schedule("at(2030-04-01T08:00:00)"), AFTER, zone=paris) == at(
        2030, 4, 1, 8, 0, tz=ZoneInfo("Europe/Paris")
    )


@pytest.mark.parametrize(
    "schedule",
    [
        "at(2030-13-01T00:00:00)",
        "at(2030-01-01 00:00:00)",
        "rate(0 minutes)",
        "rate(5 weeks)",
        "rate(-1 days)",
        "cron(0 18 * * MON *)",
        "cron(0 18 ? * ? *)",
        "cron(61 * ? * * *)",
        "cron(0 0 1 * ?)",
        "cron(0 0 ? * 9 *)",
        "cron(0 0 10-2 * ? *)",
        "cron(0 0 ? * 6#7 *)",
        "cron(0 0 1 * ? 1969)",
        "nonsense",
    ],
)
def test_malformed_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(schedule)


def test_unknown_time_zones_are_refused() -> None:
    with pytest.raises(ScheduleError, match="Invalid time zone"):
        time_zone("Mars/Olympus")
    assert time_zone(None) is UTC
