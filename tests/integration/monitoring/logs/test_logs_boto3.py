"""CloudWatch Logs through real boto3 `logs` clients: groups, streams, events forward and backward with
tokens, filter patterns across streams, paginators, errors as ClientError codes, and what `aws logs tail
--follow` and the SageMaker SDK do."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from modelhost.controller.endpoint_log import EndpointLog
from tests.integration.monitoring.logs.logs_server import ENDPOINT, GROUP, LogsServer

STREAM = "AllTraffic/alltraffic-0"
EVENTS_STREAM = "modelhost/endpoint-events"


def error_code(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    error = refused.value.response["Error"]
    return error["Code"], error["Message"]


def test_groups_and_streams(logs_server: LogsServer) -> None:
    client = logs_server.client()
    code, message = error_code(client.describe_log_groups)  # this caller may not list groups
    assert code == "AccessDeniedException" and "logs:DescribeLogGroups" in message
    streams = client.describe_log_streams(logGroupName=GROUP)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [STREAM, EVENTS_STREAM]
    assert streams[0]["arn"] == f"arn:aws:logs:eu-west-1:123456789012:log-group:{GROUP}:log-stream:{STREAM}"
    assert streams[0]["firstEventTimestamp"] <= streams[0]["lastEventTimestamp"] <= streams[0]["lastIngestionTime"]
    call = logs_server.calls[-1]
    assert call.action == "logs:DescribeLogStreams"
    assert call.resource_arn("eu-west-1", "123456789012") == f"arn:aws:logs:eu-west-1:123456789012:log-group:{GROUP}"


def test_describe_log_groups_with_a_paginator(logs_dir: Path) -> None:
    (logs_dir / "second-endpoint").mkdir()
    EndpointLog(logs_dir / "second-endpoint" / "endpoint.log").write("deploying endpoint second-endpoint")
    server = LogsServer(logs_dir).start()
    try:
        pages = list(server.client().get_paginator("describe_log_groups").paginate(PaginationConfig={"PageSize": 1}))
    finally:
        server.stop()
    names = [g["logGroupName"] for p in pages for g in p["logGroups"]]
    assert names == [GROUP, "/aws/sagemaker/Endpoints/second-endpoint"]
    assert len(pages) == 2


def test_a_traceback_comes_back_as_one_event(logs_server: LogsServer) -> None:
    events = logs_server.client().get_log_events(logGroupName=GROUP, logStreamName=STREAM, startFromHead=True)["events"]
    messages = [e["message"] for e in events]
    assert messages[0] == "[modelhost] budget memory 1.0 GiB, 1 CPU(s): not enforced on this host"
    assert messages[1].endswith("starting")
    assert messages[2].endswith(" stdout: hello from model.py")  # a print is an event of its own, with its time
    failed = next(m for m in messages if "load failed" in m)
    assert failed.splitlines()[1] == "Traceback (most recent call last):"
    assert failed.splitlines()[-1] == "ValueError: the model could not load its weights"
    assert messages[-1].splitlines()[-1] == "RuntimeError: giving up"  # the uncaught one continues the last record
    assert len(events) == 5  # the launcher's note, a print and three records of the worker
    assert all(e["timestamp"] > 1_700_000_000_000 for e in events)
    assert events[0]["timestamp"] == events[1]["timestamp"]  # before any timestamp: the file's first known time


def test_get_log_events_backward_and_forward_until_the_token_repeats(logs_server: LogsServer) -> None:
    client = logs_server.client()
    everything = client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, startFromHead=True)["events"]
    page = client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, limit=2)  # the newest first
    backward, token = page["events"], page["nextBackwardToken"]
    assert backward == everything[-2:]
    forward_token = page["nextForwardToken"]
    while True:
        page = client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, limit=2, nextToken=token)
        if page["nextBackwardToken"] == token:
            break
        backward, token = page["events"] + backward, page["nextBackwardToken"]
    assert backward == everything
    assert token.startswith("b/") and forward_token.startswith("f/")
    same = client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, nextToken=forward_token, startFromHead=True)
    assert same["events"] == [] and same["nextForwardToken"] == forward_token


def test_the_sagemaker_sdk_loop_sees_new_events(logs_server: LogsServer, logs_dir: Path) -> None:
    """sagemaker.logs.log_stream: get_log_events(startFromHead=True) with nextForwardToken until a page is empty."""
    client = logs_server.client()
    kwargs: dict[str, Any] = {"logGroupName": GROUP, "logStreamName": EVENTS_STREAM, "startFromHead": True}

    def drain() -> list[str]:
        messages = []
        while True:
            page = client.get_log_events(**kwargs)
            kwargs["nextToken"] = page["nextForwardToken"]
            if not page["events"]:
                return messages
            messages += [e["message"] for e in page["events"]]

    assert [m.split("] ", 1)[1] for m in drain()][0] == f"deploying endpoint {ENDPOINT} (status Creating)"
    EndpointLog(logs_dir / ENDPOINT.lower() / "endpoint.log").write(f"deleting endpoint {ENDPOINT}")
    assert [m.split("] ", 1)[1] for m in drain()] == [f"deleting endpoint {ENDPOINT}"]


def test_filter_log_events_across_streams_with_a_paginator(logs_server: LogsServer) -> None:
    client = logs_server.client()
    paginator = client.get_paginator("filter_log_events")
    pages = list(paginator.paginate(logGroupName=GROUP, filterPattern="?ERROR ?failed ?deploying", limit=1))
    events = [e for p in pages for e in p["events"]]
    assert len(pages) >= 3
    assert [e["logStreamName"] for e in events] == [EVENTS_STREAM, STREAM, EVENTS_STREAM]
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert "Traceback (most recent call last):" in events[1]["message"]
    phrase = client.filter_log_events(logGroupName=GROUP, filterPattern='"could not load" -ERROR')["events"]
    assert [e["logStreamName"] for e in phrase] == [EVENTS_STREAM]
    searched = client.filter_log_events(logGroupName=GROUP, logStreamNamePrefix="AllTraffic/")["searchedLogStreams"]
    assert searched == [{"logStreamName": STREAM, "searchedCompletely": True}]


def test_errors_are_client_errors_with_cloudwatch_codes(logs_server: LogsServer) -> None:
    client = logs_server.client()
    assert error_code(client.describe_log_streams, logGroupName="/aws/sagemaker/Endpoints/nope")[0] == (
        "ResourceNotFoundException"
    )
    code, message = error_code(client.get_log_events, logGroupName=GROUP, logStreamName="AllTraffic/alltraffic-3")
    assert code == "ResourceNotFoundException" and message.startswith("The specified log stream does not exist.")
    code, message = error_code(client.describe_log_streams, logGroupName=GROUP.lower())
    assert code == "ResourceNotFoundException" and message.startswith("The specified log group does not exist.")
    code, message = error_code(client.filter_log_events, logGroupName=GROUP, filterPattern='{ $.level = "x" }')
    assert code == "InvalidParameterException" and "JSON patterns are not supported" in message
    code, _ = error_code(client.get_log_events, logGroupName=GROUP, logStreamName=STREAM, nextToken="f/1/0")
    assert code == "InvalidParameterException"
    code, message = error_code(client.describe_log_streams, logGroupName=GROUP, limit=500)
    assert code == "InvalidParameterException" and "less than or equal to 50" in message


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("Logs_20140328.PutLogEvents", b"{}", "UnknownOperationException"),
        ("Logs_20140328.GetLogEvents", b"not json", "SerializationException"),
        ("Logs_20140328.GetLogEvents", b'{"logStreamName": "%s"}' % (b"a" * 2**21), "RequestEntityTooLargeException"),
        ("Logs_20140328.FilterLogEvents", b'{"logGroupName": 5}', "InvalidParameterException"),
        ("Logs_20140328.FilterLogEvents", b'{"logGroupName": "%s", "nextToken": "eyJwIjpbXX0="}' % GROUP.encode(),
         "InvalidParameterException"),
    ],
)  # fmt: skip
def test_bad_requests_are_4xx_never_5xx(logs_server: LogsServer, target: str, body: bytes, code: str) -> None:
    headers = {"x-amz-target": target, "content-type": "application/x-amz-json-1.1"}
    answer = httpx.post(logs_server.url + "/", content=body, headers=headers, trust_env=False)
    assert 400 <= answer.status_code < 500
    assert answer.json()["__type"] == code and answer.headers["content-type"] == "application/x-amz-json-1.1"


def test_what_aws_logs_tail_follow_calls(logs_server: LogsServer, logs_dir: Path) -> None:
    """The AWS CLI v2's FollowLogEventsGenerator: filter_log_events(interleaved=True) from --since, the next
    page by nextToken, then again from the newest timestamp seen, dropping eventIds it has shown."""
    client = logs_server.client()
    kwargs: dict[str, Any] = {"logGroupName": GROUP, "interleaved": True, "startTime": 0}
    shown: list[str] = []
    ids_at: dict[int, set[str]] = defaultdict(set)

    def poll() -> None:
        nonlocal ids_at
        while True:
            response = client.filter_log_events(**kwargs)
            for event in response["events"]:
                if event["eventId"] not in ids_at[event["timestamp"]]:
                    ids_at[event["timestamp"]].add(event["eventId"])
                    shown.append(event["message"])
            if ids_at:
                newest = max(ids_at)
                ids_at = defaultdict(set, {newest: ids_at[newest]})
            if "nextToken" in response:
                kwargs["nextToken"] = response["nextToken"]
                continue
            kwargs.pop("nextToken", None)
            if ids_at:
                kwargs["startTime"] = max(ids_at)
            return

    poll()
    first = len(shown)
    assert first == 7 and shown[-1].endswith("failed: load failed: the model could not load its weights")
    poll()
    assert len(shown) == first  # asked again from the newest timestamp: nothing is shown twice
    EndpointLog(logs_dir / ENDPOINT.lower() / "endpoint.log").write(f"deleting endpoint {ENDPOINT}")
    poll()
    assert len(shown) == first + 1 and shown[-1].endswith(f"deleting endpoint {ENDPOINT}")
