"""Transform jobs' log folders as CloudWatch's /aws/sagemaker/TransformJobs group: one stream per instance named
`<TransformJobName>/<instance>`, the job's case where the lookup knows it, never an endpoint group of their own."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ApiError
from modelhost.monitoring.logs.api import parse_call
from modelhost.monitoring.logs.event_ops import get_log_events
from modelhost.monitoring.logs.filtering import filter_log_events
from modelhost.monitoring.logs.groups import LogsContext, describe_log_groups, describe_log_streams
from modelhost.monitoring.logs.naming import (
    JOBS_GROUP,
    EndpointNames,
    endpoint_of_group,
    job_of_folder,
    job_stream_name,
)
from modelhost.monitoring.logs.store import LogStore

JOB = "Nightly-Scoring"


def line(second: int, text: str) -> str:
    return f"2026-12-02 00:00:{second:02d},000 INFO [w] modelhost.worker: {text}\n"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    job = tmp_path / "transform-job.nightly-scoring"
    job.mkdir()
    (job / "endpoint.log").write_text("2026-12-02 00:00:00 [modelhost] placing the job's instances\n")
    (job / "alltraffic-0.log").write_text(line(1, "record a") + line(3, "record b"))
    (job / "alltraffic-1.log").write_text(line(2, "record c"))
    (job / "notes.txt").write_text("not a log")
    gone = tmp_path / "transform-job.old-job"  # its record was deleted: the folder's lower-case name
    gone.mkdir()
    (gone / "alltraffic-0.log").write_text(line(4, "old"))
    (tmp_path / "transform-job.Bad.Name").mkdir()  # no job's folder
    endpoint = tmp_path / "falcon"
    endpoint.mkdir()
    (endpoint / "alltraffic-0.log").write_text(line(5, "endpoint"))
    return tmp_path


def job_names(key: str) -> str | None:
    return JOB if key == "nightly-scoring" else None


def endpoint_names(folder: str) -> EndpointNames | None:
    return EndpointNames("Falcon", ("AllTraffic",)) if folder == "falcon" else None


@pytest.fixture
def ctx(logs: Path) -> LogsContext:
    return LogsContext(LogStore(logs, endpoint_names, UTC, job_names=job_names), "eu-west-1", "123456789012")


def test_names() -> None:
    assert job_of_folder("transform-job.nightly-scoring") == "nightly-scoring"
    assert job_of_folder("nightly-scoring") is None and job_of_folder("transform-job.a.b") is None
    assert job_stream_name(JOB, "alltraffic-0.log") == f"{JOB}/alltraffic-0"
    assert job_stream_name(JOB, "alltraffic-0-1.log") == f"{JOB}/alltraffic-0-1"
    assert job_stream_name(JOB, "endpoint.log") == f"{JOB}/modelhost-events"
    assert job_stream_name(JOB, "notes.txt") is None and job_stream_name(JOB, "x.log") is None
    assert endpoint_of_group("/aws/sagemaker/Endpoints/transform-job.nightly-scoring") is None


def test_one_group_for_every_job_and_no_endpoint_group_for_hidden_endpoints(ctx: LogsContext) -> None:
    groups = describe_log_groups(ctx, {})["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/aws/sagemaker/Endpoints/Falcon", JOBS_GROUP]
    jobs = groups[1]
    assert jobs["logGroupArn"] == f"arn:aws:logs:eu-west-1:123456789012:log-group:{JOBS_GROUP}"
    assert jobs["storedBytes"] > 0 and jobs["creationTime"] > 0
    assert describe_log_groups(ctx, {"logGroupNamePrefix": "/aws/sagemaker/Transform"})["logGroups"][0] == jobs
    with pytest.raises(ApiError) as refused:
        describe_log_streams(ctx, {"logGroupName": "/aws/sagemaker/Endpoints/transform-job.nightly-scoring"})
    assert refused.value.code == "ResourceNotFoundException"


def test_streams_are_job_slash_instance_with_the_jobs_case(ctx: LogsContext) -> None:
    streams = describe_log_streams(ctx, {"logGroupName": JOBS_GROUP})["logStreams"]
    assert [s["logStreamName"] for s in streams] == [
        f"{JOB}/alltraffic-0",
        f"{JOB}/alltraffic-1",
        f"{JOB}/modelhost-events",
        "old-job/alltraffic-0",
    ]
    one = describe_log_streams(ctx, {"logGroupName": JOBS_GROUP, "logStreamNamePrefix": f"{JOB}/"})["logStreams"]
    assert len(one) == 3
    arn = f"arn:aws:logs:eu-west-1:123456789012:log-group:{JOBS_GROUP}:*"
    assert len(describe_log_streams(ctx, {"logGroupIdentifier": arn})["logStreams"]) == 4


def test_get_and_filter_log_events(ctx: LogsContext) -> None:
    page = get_log_events(ctx, {"logGroupName": JOBS_GROUP, "logStreamName": f"{JOB}/alltraffic-0"})
    assert [e["message"].rsplit(": ", 1)[1] for e in page["events"]] == ["record a", "record b"]
    for wrong in (f"{JOB.lower()}/alltraffic-0", f"{JOB}/alltraffic-9", "../falcon/alltraffic-0", "alltraffic-0"):
        with pytest.raises(ApiError) as refused:
            get_log_events(ctx, {"logGroupName": JOBS_GROUP, "logStreamName": wrong})
        assert refused.value.code == "ResourceNotFoundException", wrong
    found: dict[str, Any] = filter_log_events(ctx, {"logGroupName": JOBS_GROUP, "logStreamNamePrefix": f"{JOB}/"})
    assert [(e["logStreamName"], e["message"].rsplit(": ", 1)[-1]) for e in found["events"]] == [
        (f"{JOB}/modelhost-events", "2026-12-02 00:00:00 [modelhost] placing the job's instances"),
        (f"{JOB}/alltraffic-0", "record a"),
        (f"{JOB}/alltraffic-1", "record c"),
        (f"{JOB}/alltraffic-0", "record b"),
    ]


def test_no_job_folder_no_group(tmp_path: Path) -> None:
    (tmp_path / "falcon").mkdir()
    ctx = LogsContext(LogStore(tmp_path, endpoint_names, UTC, job_names=job_names), "eu-west-1", "1")
    assert [g["logGroupName"] for g in describe_log_groups(ctx, {})["logGroups"]] == [
        "/aws/sagemaker/Endpoints/Falcon"
    ]
    with pytest.raises(ApiError) as refused:
        describe_log_streams(ctx, {"logGroupName": JOBS_GROUP})
    assert refused.value.code == "ResourceNotFoundException"


def test_without_a_lookup_jobs_keep_the_folders_case(logs: Path) -> None:
    ctx = LogsContext(LogStore(logs, endpoint_names, UTC), "eu-west-1", "1")
    names = [s["logStreamName"] for s in describe_log_streams(ctx, {"logGroupName": JOBS_GROUP})["logStreams"]]
    assert names[0] == "nightly-scoring/alltraffic-0"


def test_calls_on_the_group_are_authorized_on_its_arn() -> None:
    call = parse_call("FilterLogEvents", b'{"logGroupName": "/aws/sagemaker/TransformJobs"}')
    assert call.action == "logs:FilterLogEvents"
    assert call.resource_arn("eu-west-1", "111") == "arn:aws:logs:eu-west-1:111:log-group:/aws/sagemaker/TransformJobs"
