"""Scheduled actions' schedules: `at(yyyy-mm-ddThh:mm:ss)`, `rate(value unit)` and
`cron(minutes hours day-of-month month day-of-week year)` parsed and checked as Application Auto Scaling
documents them, and the next time each one runs (pure).

cron fields take `*`, numbers, names (JAN-DEC, SUN-SAT), ranges `a-b`, steps `a/n` and `a-b/n`, lists `a,b`;
day-of-month also `L` and `nW`, day-of-week also `?`, `nL` (last such weekday) and `n#k` (k-th such weekday).
Day-of-week runs 1-7 from Sunday; exactly one of day-of-month and day-of-week is `?`.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_RATE = re.compile(r"rate\((\d{1,9}) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\(([^()]*)\)")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {name: i + 1 for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
CRON_SEARCH_YEARS = 5  # how far ahead a cron schedule's next run is looked for


class ScheduleError(ValueError):
    """The schedule, or its time zone, is not one Application Auto Scaling accepts (the message says why)."""


@dataclass(frozen=True, slots=True)
class CronSpec:
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    days_of_month: str  # the raw field ("?" when day-of-week decides)
    days_of_week: str


@dataclass(frozen=True, slots=True)
class Schedule:
    kind: str  # "at" | "rate" | "cron"
    at: datetime | None = None  # naive, in the action's time zone
    rate_s: int | None = None
    cron: CronSpec | None = None


def time_zone(name: str | None) -> tzinfo:
    """The IANA zone `name` (UTC when None); ScheduleError for a name the zone database does not know."""
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"Invalid time zone: '{name[:100]}'. Use an IANA time zone name such as Europe/Paris."
        ) from None


def parse_schedule(text: str) -> Schedule:
    """The schedule `text` describes; ScheduleError naming what is wrong."""
    text = text.strip()
    if match := _AT.fullmatch(text):
        try:
            return Schedule("at", at=datetime.fromisoformat(match.group(1)))
        except ValueError:
            raise ScheduleError(f"Invalid date in the schedule expression '{text[:100]}'.") from None
    if match := _RATE.fullmatch(text):
        value = int(match.group(1))
        if value < 1:
            raise ScheduleError(f"The rate in '{text[:100]}' must be a positive integer.")
        return Schedule("rate", rate_s=value * _UNIT_S[match.group(2).rstrip("s")])
    if match := _CRON.fullmatch(text):
        return Schedule("cron", cron=_parse_cron(match.group(1), text))
    raise ScheduleError(
        f"Invalid schedule expression: '{text[:100]}'. Use at(yyyy-mm-ddThh:mm:ss), rate(value unit) with unit "
        "minute(s), hour(s) or day(s), or cron(minutes hours day-of-month month day-of-week year)."
    )


def _parse_cron(body: str, text: str) -> CronSpec:
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleError(f"The cron expression in '{text[:100]}' must have 6 fields, not {len(fields)}.")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(f"In '{text[:100]}' exactly one of day-of-month and day-of-week must be '?'.")
    spec = CronSpec(
        minutes=_field(minute, 0, 59, {}, text),
        hours=_field(hour, 0, 23, {}, text),
        months=_field(month, 1, 12, _MONTHS, text),
        years=_field(year, 1970, 2199, {}, text),
        days_of_month=dom,
        days_of_week=dow,
    )
    if dom != "?":
        _day_of_month_ok(dom, text)
    if dow != "?":
        _day_of_week_ok(dow, text)
    return spec


def _number(token: str, low: int, high: int, names: dict[str, int], text: str) -> int:
    value = names.get(token.upper()) if not token.isdigit() else int(token)
    if value is None or not low <= value <= high:
        raise ScheduleError(f"The cron value '{token[:20]}' in '{text[:100]}' is outside {low}-{high}.")
    return value


def _field(field: str, low: int, high: int, names: dict[str, int], text: str) -> frozenset[int]:
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, 1, high - low + 1 or 1, {}, text) if step_text else 1
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, stop = _number(first, low, high, names, text), _number(last, low, high, names, text)
            if start > stop:
                raise ScheduleError(f"The cron range '{base[:20]}' in '{text[:100]}' runs backwards.")
        else:
            start = _number(base, low, high, names, text)
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def _day_of_month_ok(field: str, text: str) -> None:
    if field in ("L", "LW") or re.fullmatch(r"\d{1,2}W", field):
        if field.endswith("W") and field not in ("LW",):
            _number(field[:-1], 1, 31, {}, text)
        return
    _field(field, 1, 31, {}, text)


def _day_of_week_ok(field: str, text: str) -> None:
    if (match := re.fullmatch(r"(\w+)L", field)) or (match := re.fullmatch(r"(\w+)#([1-5])", field)):
        _number(match.group(1), 1, 7, _DAYS, text)
    else:
        _field(field, 1, 7, _DAYS, text)


def _matches_day(spec: CronSpec, day: datetime) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    if spec.days_of_month != "?":
        return _matches_dom(spec.days_of_month, day, last)
    return _matches_dow(spec.days_of_week, day, last)


def _matches_dom(field: str, day: datetime, last: int) -> bool:
    if field == "L":
        return day.day == last
    if field.endswith("W"):
        wanted = last if field == "LW" else min(int(field[:-1]), last)
        return day.day == _nearest_weekday(day.year, day.month, wanted, last)
    return day.day in _field(field, 1, 31, {}, field)


def _nearest_weekday(year: int, month: int, wanted: int, last: int) -> int:
    weekday = calendar.weekday(year, month, wanted)  # Monday 0 .. Sunday 6
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return wanted - 1 if wanted > 1 else wanted + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return wanted + 1 if wanted < last else wanted - 2
    return wanted


def _cron_weekday(day: datetime) -> int:
    return (day.weekday() + 1) % 7 + 1  # Sunday 1 .. Saturday 7


def _matches_dow(field: str, day: datetime, last: int) -> bool:
    weekday = _cron_weekday(day)
    if match := re.fullmatch(r"(\w+)L", field):
        return weekday == _number(match.group(1), 1, 7, _DAYS, field) and day.day + 7 > last
    if match := re.fullmatch(r"(\w+)#([1-5])", field):
        nth = (day.day - 1) // 7 + 1
        return weekday == _number(match.group(1), 1, 7, _DAYS, field) and nth == int(match.group(2))
    return weekday in _field(field, 1, 7, _DAYS, field)


def next_run(schedule: Schedule, after: float, *, zone: tzinfo = UTC, anchor: float | None = None) -> float | None:
    """The first time (epoch seconds) after `after` the schedule runs, None when it never runs again. A rate
    counts from `anchor` (the action's StartTime or creation); at and cron read in `zone`."""
    if schedule.kind == "at" and schedule.at is not None:
        moment = schedule.at.replace(tzinfo=zone).timestamp()
        return moment if moment > after else None
    if schedule.kind == "rate" and schedule.rate_s is not None:
        start = after if anchor is None else anchor
        if start > after:
            return start
        periods = int((after - start) // schedule.rate_s) + 1
        return start + periods * schedule.rate_s
    if schedule.kind == "cron" and schedule.cron is not None:
        return _next_cron(schedule.cron, after, zone)
    return None


def _next_cron(spec: CronSpec, after: float, zone: tzinfo) -> float | None:
    local = datetime.fromtimestamp(after, zone).replace(second=0, microsecond=0, tzinfo=None)
    day = local.replace(hour=0, minute=0)
    end = day + timedelta(days=366 * CRON_SEARCH_YEARS)
    while day < end:
        if day.year in spec.years and day.month in spec.months and _matches_day(spec, day):
            for hour in sorted(spec.hours):
                for minute in sorted(spec.minutes):
                    moment = day.replace(hour=hour, minute=minute).replace(tzinfo=zone).timestamp()
                    if moment > after:
                        return moment
        day += timedelta(days=1)
    return None
