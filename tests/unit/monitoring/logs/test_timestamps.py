"""The timestamps a log line may start with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from modelhost.monitoring.logs.timestamps import line_timestamp_ms


def ms(*args: int, tz: timezone = UTC) -> int:
    return round(datetime(*args, tzinfo=tz).timestamp() * 1000)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"2026-12-02 00:50:27 [modelhost] deploying endpoint cli-bad (status Creating)\n", ms(2026, 12, 2, 0, 50, 27)),
        (b"2026-12-02 00:50:28,052 INFO [cli-bad-alltraffic-0-f887b428-c0] modelhost.worker: up\n",
         ms(2026, 12, 2, 0, 50, 28, 52000)),
        (b"2026-12-02T00:50:28.052123Z hello\n", ms(2026, 12, 2, 0, 50, 28, 52000)),
        (b"2026-12-02T00:50:28.5+02:00 x\n", ms(2026, 12, 1, 22, 50, 28, 500000)),
        (b"2026-12-02 00:50:28,052 -0130 x\n", ms(2026, 12, 2, 2, 20, 28, 52000)),
        (b"2026-12-02 00:50:28\n", ms(2026, 12, 2, 0, 50, 28)),
        (b"2026-12-02 00:50:28", ms(2026, 12, 2, 0, 50, 28)),
    ],
)  # fmt: skip
def test_recognised_forms(line: bytes, expected: int) -> None:
    assert line_timestamp_ms(line, UTC) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"Traceback (most recent call last):\n",
        b"  2026-12-02 00:50:28 indented\n",
        b"[modelhost] budget memory 1.0 GiB\n",
        b"2026-13-02 00:50:28 no such month\n",
        b"2026-02-30 00:50:28 no such day\n",
        b"2026-12-02 25:00:00 no such hour\n",
        b"2026-12-02 00:50:28x glued to a word\n",
        b"2026-12-02\n",
        b"",
    ],
)
def test_lines_that_do_not_start_with_a_time(line: bytes) -> None:
    assert line_timestamp_ms(line, UTC) is None


def test_a_time_without_zone_is_in_the_given_local_zone() -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    assert line_timestamp_ms(b"2026-12-02 00:50:28 x", east) == ms(2026, 12, 2, 0, 50, 28, tz=east)
    assert line_timestamp_ms(b"2026-12-02 00:50:28Z x", east) == ms(2026, 12, 2, 0, 50, 28)


def test_a_time_without_zone_defaults_to_the_hosts_zone() -> None:
    expected = round(datetime(2026, 12, 2, 0, 50, 28).astimezone().timestamp() * 1000)
    assert line_timestamp_ms(b"2026-12-02 00:50:28 x") == expected
