"""The four operations over a log folder: names, paging, tokens, time ranges, errors."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ApiError
from modelhost.monitoring.logs.event_ops import get_log_events
from modelhost.monitoring.logs.filtering import filter_log_events
from modelhost.monitoring.logs.groups import LogsContext, describe_log_groups, describe_log_streams
from modelhost.monitoring.logs.naming import EndpointNames, stream_name
from modelhost.monitoring.logs.store import LogStore

GROUP = "/aws/sagemaker/Endpoints/Falcon-Blue"
STREAM = "AllTraffic/alltraffic-0"


def line(second: int, text: str) -> str:
    return f"2026-12-02 00:00:{second:02d},000 INFO [falcon-blue-alltraffic-0-c0] modelhost.worker: {text}\n"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "falcon-blue"
    folder.mkdir()
    (folder / "endpoint.log").write_text("".join(f"2026-12-02 00:00:{s:02d} [modelhost] step {s}\n" for s in (0, 30)))
    (folder / "alltraffic-0.log").write_text("".join(line(s, f"event {s}") for s in range(1, 21)))
    (folder / "alltraffic-0-1.log").write_text(line(5, "copy one"))
    (folder / "shadow-variant-1.log").write_text(line(7, "shadow"))
    (folder / "notes.txt").write_text("not a log")
    (tmp_path / "gone-endpoint").mkdir()
    (tmp_path / "gone-endpoint" / "alltraffic-0.log").write_text(line(1, "old"))
    return tmp_path


def names(folder: str) -> EndpointNames | None:
    return EndpointNames("Falcon-Blue", ("AllTraffic", "Shadow-Variant")) if folder == "falcon-blue" else None


@pytest.fixture
def ctx(logs: Path) -> LogsContext:
    return LogsContext(LogStore(logs, names, UTC), "eu-west-1", "123456789012")


def code_of(call: Any, *args: Any) -> str:
    with pytest.raises(ApiError) as refused:
        call(*args)
    return refused.value.code


def test_stream_names_keep_the_variants_case() -> None:
    assert stream_name("alltraffic-0.log", ("AllTraffic",)) == "AllTraffic/alltraffic-0"
    assert stream_name("alltraffic-0-1.log", ("AllTraffic",)) == "AllTraffic/alltraffic-0-1"
    assert stream_name("blue-1-0.log", ("Blue", "Blue-1")) == "Blue-1/blue-1-0"  # the longest known variant
    assert stream_name("alltraffic-0-1.log") == "alltraffic/alltraffic-0-1"  # endpoint gone: the file's case
    assert stream_name("endpoint.log") == "modelhost/endpoint-events"
    assert stream_name("notes.txt") is None and stream_name("x.log") is None


def test_groups_have_the_endpoints_case_and_unknown_endpoints_the_folders(ctx: LogsContext) -> None:
    groups = describe_log_groups(ctx, {})["logGroups"]
    assert [g["logGroupName"] for g in groups] == [GROUP, "/aws/sagemaker/Endpoints/gone-endpoint"]
    assert groups[0]["arn"] == f"arn:aws:logs:eu-west-1:123456789012:log-group:{GROUP}:*"
    assert groups[0]["logGroupArn"] == f"arn:aws:logs:eu-west-1:123456789012:log-group:{GROUP}"
    assert groups[0]["storedBytes"] > 0 and groups[0]["creationTime"] > 0
    streams = describe_log_streams(ctx, {"logGroupName": GROUP})["logStreams"]
    assert [s["logStreamName"] for s in streams] == [
        "AllTraffic/alltraffic-0",
        "AllTraffic/alltraffic-0-1",
        "Shadow-Variant/shadow-variant-1",
        "modelhost/endpoint-events",
    ]


def test_group_names_are_case_sensitive(ctx: LogsContext) -> None:
    assert code_of(describe_log_streams, ctx, {"logGroupName": GROUP.lower()}) == "ResourceNotFoundException"
    assert code_of(describe_log_streams, ctx, {"logGroupName": "/aws/lambda/x"}) == "ResourceNotFoundException"
    arn = f"arn:aws:logs:eu-west-1:123456789012:log-group:{GROUP}:*"
    assert len(describe_log_streams(ctx, {"logGroupIdentifier": arn})["logStreams"]) == 4
    both = {"logGroupName": GROUP, "logGroupIdentifier": GROUP}
    assert code_of(describe_log_streams, ctx, both) == "InvalidParameterException"
    assert code_of(describe_log_streams, ctx, {}) == "InvalidParameterException"


def test_describe_log_groups_filters_and_pages(ctx: LogsContext) -> None:
    assert len(describe_log_groups(ctx, {"logGroupNamePrefix": "/aws/sagemaker/Endpoints/F"})["logGroups"]) == 1
    brief = describe_log_groups(ctx, {"logGroupNamePattern": "Blue"})["logGroups"]
    assert [set(g) for g in brief] == [{"logGroupName", "creationTime", "arn"}]
    assert describe_log_groups(ctx, {"logGroupNamePattern": "blue"})["logGroups"] == []  # case-sensitive
    both = {"logGroupNamePrefix": "/", "logGroupNamePattern": "x"}
    assert code_of(describe_log_groups, ctx, both) == "InvalidParameterException"
    first = describe_log_groups(ctx, {"limit": 1})
    second = describe_log_groups(ctx, {"limit": 1, "nextToken": first["nextToken"]})
    assert [g["logGroupName"] for g in first["logGroups"] + second["logGroups"]][1].endswith("gone-endpoint")
    assert "nextToken" not in second


def test_describe_log_streams_orders_and_pages(ctx: LogsContext) -> None:
    seen, params = [], {"logGroupName": GROUP, "orderBy": "LastEventTime", "descending": True, "limit": 1}
    while True:
        page = describe_log_streams(ctx, params)
        seen += page["logStreams"]
        if "nextToken" not in page:
            break
        params["nextToken"] = page["nextToken"]
    assert [s["lastEventTimestamp"] for s in seen] == sorted((s["lastEventTimestamp"] for s in seen), reverse=True)
    assert seen[0]["logStreamName"] == "modelhost/endpoint-events" and len(seen) == 4
    mixed = {"logGroupName": GROUP, "orderBy": "LastEventTime", "logStreamNamePrefix": "All"}
    assert code_of(describe_log_streams, ctx, mixed) == "InvalidParameterException"


def _messages(page: dict[str, Any]) -> list[str]:
    return [e["message"].rsplit(": ", 1)[1] for e in page["events"]]


def test_get_log_events_newest_first_then_backward_until_the_token_repeats(ctx: LogsContext) -> None:
    params: dict[str, Any] = {"logGroupName": GROUP, "logStreamName": STREAM, "limit": 6}
    page = get_log_events(ctx, params)
    assert _messages(page) == [f"event {s}" for s in range(15, 21)]
    seen, token = _messages(page), page["nextBackwardToken"]
    while True:
        page = get_log_events(ctx, {**params, "nextToken": token})
        if page["nextBackwardToken"] == token:
            assert page["events"] == []
            break
        seen = _messages(page) + seen
        token = page["nextBackwardToken"]
    assert seen == [f"event {s}" for s in range(1, 21)]


def test_get_log_events_forward_until_the_token_repeats_then_new_events(ctx: LogsContext, logs: Path) -> None:
    params: dict[str, Any] = {"logGroupName": GROUP, "logStreamName": STREAM, "startFromHead": True, "limit": 7}
    seen, token = [], None
    while True:
        page = get_log_events(ctx, {**params, **({"nextToken": token} if token else {})})
        seen += _messages(page)
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert seen == [f"event {s}" for s in range(1, 21)]
    assert get_log_events(ctx, {**params, "nextToken": token})["nextForwardToken"] == token
    with open(logs / "falcon-blue" / "alltraffic-0.log", "a") as f:
        f.write(line(40, "later") + "Traceback (most recent call last):\nValueError: x\n")
    page = get_log_events(ctx, {**params, "nextToken": token})
    assert [e["message"].splitlines()[-1] for e in page["events"]] == ["ValueError: x"]
    assert page["nextForwardToken"] != token


def test_get_log_events_time_range_and_errors(ctx: LogsContext) -> None:
    base = get_log_events(ctx, {"logGroupName": GROUP, "logStreamName": STREAM, "startFromHead": True})
    stamps = [e["timestamp"] for e in base["events"]]
    ranged = {"logGroupName": GROUP, "logStreamName": STREAM, "startTime": stamps[4], "endTime": stamps[9]}
    assert _messages(get_log_events(ctx, ranged)) == [f"event {s}" for s in range(5, 10)]
    assert code_of(get_log_events, ctx, {**ranged, "startTime": stamps[9], "endTime": stamps[4]}) == (
        "InvalidParameterException"
    )
    missing = {"logGroupName": GROUP, "logStreamName": "AllTraffic/alltraffic-9"}
    assert code_of(get_log_events, ctx, missing) == "ResourceNotFoundException"
    other = get_log_events(ctx, {"logGroupName": GROUP, "logStreamName": "modelhost/endpoint-events"})
    foreign = {"logGroupName": GROUP, "logStreamName": STREAM, "nextToken": other["nextForwardToken"]}
    assert code_of(get_log_events, ctx, foreign) == "InvalidParameterException"


def test_filter_log_events_interleaves_streams_by_time_and_pages(ctx: LogsContext) -> None:
    params: dict[str, Any] = {"logGroupName": GROUP, "filterPattern": "?copy ?shadow ?step", "limit": 2}
    events, token, ids = [], None, []
    while True:
        page = filter_log_events(ctx, {**params, **({"nextToken": token} if token else {})})
        events += page["events"]
        token = page.get("nextToken")
        if token is None:
            break
    assert [(e["logStreamName"], e["message"].split("] ")[-1]) for e in events] == [
        ("modelhost/endpoint-events", "step 0"),
        ("AllTraffic/alltraffic-0-1", "modelhost.worker: copy one"),
        ("Shadow-Variant/shadow-variant-1", "modelhost.worker: shadow"),
        ("modelhost/endpoint-events", "step 30"),
    ]
    ids = [e["eventId"] for e in events]
    again = filter_log_events(ctx, {"logGroupName": GROUP, "filterPattern": "?copy ?shadow ?step"})
    assert [e["eventId"] for e in again["events"]] == ids and len(set(ids)) == 4
    assert all(s["searchedCompletely"] for s in again["searchedLogStreams"])


def test_filter_log_events_stream_selection(ctx: LogsContext) -> None:
    only = filter_log_events(ctx, {"logGroupName": GROUP, "logStreamNamePrefix": "Shadow"})
    assert {e["logStreamName"] for e in only["events"]} == {"Shadow-Variant/shadow-variant-1"}
    named = filter_log_events(ctx, {"logGroupName": GROUP, "logStreamNames": [STREAM], "filterPattern": '"event 2"'})
    assert _messages(named) == ["event 2", "event 20"]
    both = {"logGroupName": GROUP, "logStreamNames": [STREAM], "logStreamNamePrefix": "A"}
    assert code_of(filter_log_events, ctx, both) == "InvalidParameterException"
    absent = {"logGroupName": GROUP, "logStreamNames": ["AllTraffic/alltraffic-7"]}
    assert code_of(filter_log_events, ctx, absent) == "ResourceNotFoundException"
