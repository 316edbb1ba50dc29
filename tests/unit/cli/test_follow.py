"""Following a log group with FilterLogEvents against a fake Logs API: paging, no event twice, late events from
another instance, new instances, the backlog, prefixes and colours, the end when the group goes."""

from __future__ import annotations

import io
from typing import Any

import click
import pytest
from botocore.exceptions import ClientError

from modelhost.cli.follow import Follower, Printer
from modelhost.cli.logs import follow

GROUP = "/aws/sagemaker/Endpoints/chat"


class FakeLogs:
    """A log group as FilterLogEvents answers it: events at or after startTime, oldest first, `page_size` per
    page with a nextToken; `gone` makes it answer ResourceNotFoundException."""

    def __init__(self, page_size: int = 2) -> None:
        self.events: list[dict[str, Any]] = []
        self.page_size = page_size
        self.requests: list[dict[str, Any]] = []
        self.gone = False

    def add(self, stream: str, timestamp: int, message: str) -> None:
        self.events.append({"logStreamName": stream, "timestamp": timestamp, "message": message,
                            "eventId": f"{timestamp:020d}-{len(self.events)}"})  # fmt: skip

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        if self.gone:
            message = "The specified log group does not exist."
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": message}}, "FilterLogEvents")
        assert kwargs["logGroupName"] == GROUP and "logStreamNames" not in kwargs  # the whole group, every poll
        matching = sorted((e for e in self.events if e["timestamp"] >= kwargs["startTime"]),
                          key=lambda e: e["timestamp"])  # fmt: skip
        offset = int(kwargs.get("nextToken", "0"))
        page = matching[offset : offset + self.page_size]
        answer: dict[str, Any] = {"events": page}
        if offset + self.page_size < len(matching):
            answer["nextToken"] = str(offset + self.page_size)
        return answer


def messages(events: list[dict[str, Any]]) -> list[str]:
    return [e["message"] for e in events]


def test_each_event_is_returned_once_across_pages_and_polls() -> None:
    logs = FakeLogs(page_size=2)
    for i in range(5):
        logs.add("AllTraffic/alltraffic-0", 1000 + i, f"line {i}")
    follower = Follower(logs, GROUP, start_ms=0)
    assert messages(follower.poll()) == [f"line {i}" for i in range(5)]
    assert len(logs.requests) == 3 and logs.requests[1]["nextToken"] == "2"
    assert follower.poll() == []
    logs.add("AllTraffic/alltraffic-0", 1005, "line 5")
    assert messages(follower.poll()) == ["line 5"]


def test_a_late_line_of_another_instance_and_a_new_instance_are_picked_up() -> None:
    logs = FakeLogs(page_size=100)
    logs.add("AllTraffic/alltraffic-0", 50_000, "a at 50s")
    follower = Follower(logs, GROUP, start_ms=0, late_ms=10_000)
    assert messages(follower.poll()) == ["a at 50s"]
    assert follower.start_ms == 40_000  # trails the newest event shown
    logs.add("AllTraffic/alltraffic-1", 45_000, "b at 45s, flushed late")
    logs.add("AllTraffic/alltraffic-2", 51_000, "c: a new instance")
    assert messages(follower.poll()) == ["b at 45s, flushed late", "c: a new instance"]
    assert logs.requests[-1]["startTime"] == 40_000


def test_an_event_that_grows_is_shown_again_with_its_new_lines_only() -> None:
    logs = FakeLogs(page_size=100)
    logs.add("v/v-0", 1000, "2026-01-01T00:00:01Z INFO access 200")
    follower = Follower(logs, GROUP, start_ms=0)
    assert messages(follower.poll()) == ["2026-01-01T00:00:01Z INFO access 200"]
    logs.events[0]["message"] += "\nhandled hello\nhandled again"  # a model's prints continue the event
    grown = follower.poll()
    assert messages(grown) == ["handled hello\nhandled again"] and grown[0]["eventId"] == logs.events[0]["eventId"]
    assert follower.poll() == []


def test_ids_older_than_the_start_time_are_forgotten() -> None:
    logs = FakeLogs(page_size=100)
    follower = Follower(logs, GROUP, start_ms=0, late_ms=1_000)
    for t in range(0, 100_000, 5_000):
        logs.add("v/v-0", t, f"at {t}")
        follower.poll()
    assert len(follower._seen) == 1  # only the newest is within late_ms of itself


def test_printer_prefixes_every_line_with_the_stream() -> None:
    out = io.StringIO()
    Printer(out, colour=False).write([
        {"logStreamName": "AllTraffic/alltraffic-0", "message": "Traceback (most recent call last):\n  File x\n"},
        {"logStreamName": "modelhost/endpoint-events", "message": "endpoint chat is InService"},
    ])  # fmt: skip
    assert out.getvalue().splitlines() == [
        "[AllTraffic/alltraffic-0] Traceback (most recent call last):",
        "[AllTraffic/alltraffic-0]   File x",
        "[modelhost/endpoint-events] endpoint chat is InService",
    ]


def test_printer_colours_each_stream_its_own_way() -> None:
    printer = Printer(io.StringIO(), colour=True)
    a, b = printer.prefix("A/a-0"), printer.prefix("A/a-1")
    assert a != b and click.unstyle(a) == "[A/a-0]" and "\x1b[" in a and printer.prefix("A/a-0") == a


def test_follow_prints_the_backlog_tail_then_new_events_and_ends_when_the_group_goes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs = FakeLogs(page_size=3)
    for i in range(6):
        logs.add("AllTraffic/alltraffic-0", 1_000_000 + i, f"old {i}")
    out = io.StringIO()
    polls = iter(range(3))

    def sleep(seconds: float) -> None:
        step = next(polls)
        if step == 0:
            logs.add("AllTraffic/alltraffic-1", 1_000_010, "new from a second instance")
        elif step == 2:
            logs.gone = True

    follow(logs, GROUP, Printer(out, colour=False), since_ms=600_000, backlog=2, now_ms=lambda: 1_500_000,
           sleep=sleep)  # fmt: skip
    assert out.getvalue().splitlines() == [
        "[AllTraffic/alltraffic-0] old 4",
        "[AllTraffic/alltraffic-0] old 5",
        "[AllTraffic/alltraffic-1] new from a second instance",
    ]
    assert logs.requests[0]["startTime"] == 900_000  # --since 10m before now
    assert "the log group /aws/sagemaker/Endpoints/chat is gone" in capsys.readouterr().err


def test_a_group_missing_at_the_start_is_the_apis_error() -> None:
    logs = FakeLogs()
    logs.gone = True
    with pytest.raises(ClientError):  # at the start the group must exist: the CLI prints the API's error
        follow(logs, GROUP, Printer(io.StringIO(), colour=False), since_ms=1, backlog=10, sleep=lambda s: None)
