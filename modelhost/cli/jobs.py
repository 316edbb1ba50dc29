"""`modelhost jobs ls | describe NAME | logs NAME [-f]`: batch transform jobs through the SageMaker API
(ListTransformJobs, DescribeTransformJob with its `ModelhostProgress`, read from the raw answer since boto3's
parser drops it) and their workers' logs through the CloudWatch Logs API (/aws/sagemaker/TransformJobs, the
streams `<TransformJobName>/...`)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from botocore.exceptions import ClientError

from modelhost.cli.client import clients, server_url, service_client
from modelhost.cli.follow import Follower, LogsClient, Printer
from modelhost.cli.metrics_view import parse_duration

JOBS_GROUP = "/aws/sagemaker/TransformJobs"
DESCRIBE_ALL_UP_TO = 50  # more jobs than this: only the InProgress/Stopping ones are described for progress
RUNNING = ("InProgress", "Stopping")
ENDED = ("Completed", "Failed", "Stopped")
POLL_INTERVAL_S = 1.0
STATUS_EVERY_S = 5.0


def described(sm: Any, name: str) -> dict[str, Any]:
    """DescribeTransformJob's answer as the server sent it (JSON: times are epoch seconds), ModelhostProgress
    included; a ClientError as boto3 raises it."""
    raw: dict[str, Any] = {}

    def keep(http_response: Any, **_: Any) -> None:
        try:
            body = json.loads(http_response.content)
        except ValueError:
            return
        if isinstance(body, dict):
            raw.update(body)

    sm.meta.events.register("after-call.sagemaker.DescribeTransformJob", keep)
    try:
        sm.describe_transform_job(TransformJobName=name)
    finally:
        sm.meta.events.unregister("after-call.sagemaker.DescribeTransformJob", keep)
    return raw


def _time(value: Any) -> str:
    """An epoch (the raw answer) or a datetime (boto3's) as local time; '-' when absent."""
    if isinstance(value, datetime):
        return f"{value.astimezone():%Y-%m-%d %H:%M:%S}"
    if isinstance(value, int | float):
        return f"{datetime.fromtimestamp(value).astimezone():%Y-%m-%d %H:%M:%S}"
    return "-"


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return None


def progress_of(answer: dict[str, Any]) -> dict[str, Any]:
    found = answer.get("ModelhostProgress")
    return found if isinstance(found, dict) else {}


def job_rows(sm: Any) -> list[dict[str, Any]]:
    """Every job, newest first, with its progress where it was described."""
    summaries = [
        s
        for page in sm.get_paginator("list_transform_jobs").paginate(SortBy="CreationTime", SortOrder="Descending")
        for s in page["TransformJobSummaries"]
    ]
    describe_all = len(summaries) <= DESCRIBE_ALL_UP_TO
    rows = []
    for summary in summaries:
        name, status = summary["TransformJobName"], summary["TransformJobStatus"]
        progress: dict[str, Any] = {}
        if describe_all or status in RUNNING:
            try:
                progress = progress_of(described(sm, name))
            except ClientError:  # deleted or unreadable since it was listed: shown without progress
                progress = {}
        rows.append({
            "name": name,
            "status": status,
            "created": _iso(summary.get("CreationTime")),
            "ended": _iso(summary.get("TransformEndTime")),
            "objects_done": progress.get("ObjectsDone"),
            "objects_total": progress.get("ObjectsTotal"),
            "records_done": progress.get("RecordsDone"),
            "records_per_s": progress.get("RecordsPerSecond"),
            "failure_reason": summary.get("FailureReason"),
        })  # fmt: skip
    return rows


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def render_rows(rows: list[dict[str, Any]]) -> list[str]:
    header = ("NAME", "STATUS", "CREATED", "OBJECTS", "RECORDS", "REC/S")
    table = [header]
    for row in rows:
        objects = "-" if row["objects_total"] is None else f"{row['objects_done']}/{row['objects_total']}"
        rate = "-" if row["records_per_s"] is None else f"{float(row['records_per_s']):.1f}"
        created = "-" if row["created"] is None else _time(datetime.fromisoformat(row["created"]))
        table.append((row["name"], row["status"], created, objects, _dash(row["records_done"]), rate))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]


def _source(answer: dict[str, Any]) -> tuple[str, str]:
    source = answer.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {})
    return str(source.get("S3DataType", "-")), str(source.get("S3Uri", "-"))


def render_description(answer: dict[str, Any]) -> list[str]:
    """The fields that matter, one per line."""
    p = progress_of(answer)
    given = answer.get("TransformInput", {})
    output = answer.get("TransformOutput", {})
    resources = answer.get("TransformResources", {})
    data_type, uri = _source(answer)
    lines = [
        f"Name:            {answer.get('TransformJobName', '-')}",
        f"Arn:             {answer.get('TransformJobArn', '-')}",
        f"Status:          {answer.get('TransformJobStatus', '-')}",
    ]
    if answer.get("FailureReason"):
        lines.append(f"FailureReason:   {answer['FailureReason']}")
    lines += [
        f"Model:           {answer.get('ModelName', '-')}",
        f"Instances:       {resources.get('InstanceCount', '-')} x {resources.get('InstanceType', '-')}",
        f"Created:         {_time(answer.get('CreationTime'))}",
        f"Started:         {_time(answer.get('TransformStartTime'))}",
        f"Ended:           {_time(answer.get('TransformEndTime'))}",
        f"Input:           {uri} ({data_type}, ContentType {given.get('ContentType', '-')}, "
        f"SplitType {given.get('SplitType', 'None')}, CompressionType {given.get('CompressionType', 'None')})",
        f"Output:          {output.get('S3OutputPath', '-')} (AssembleWith {output.get('AssembleWith', 'None')}, "
        f"Accept {output.get('Accept', '-')})",
        f"BatchStrategy:   {answer.get('BatchStrategy', '-')}, MaxPayloadInMB {answer.get('MaxPayloadInMB', '-')}, "
        f"MaxConcurrentTransforms {answer.get('MaxConcurrentTransforms', '-')}",
    ]
    if p:
        rate = p.get("RecordsPerSecond")
        lines += [
            f"Objects:         {_dash(p.get('ObjectsDone'))}/{_dash(p.get('ObjectsTotal'))} done",
            f"Records:         {_dash(p.get('RecordsDone'))} done, "
            f"{'-' if rate is None else f'{float(rate):.1f}'} records/s",
            f"BytesRead:       {_dash(p.get('BytesRead'))}",
            f"Resumed:         {_dash(p.get('Resumed'))} time(s) after a server restart",
        ]
    return lines


class OneJob:
    """The logs client asked for one job's streams only (`<TransformJobName>/...`)."""

    def __init__(self, client: LogsClient, job: str) -> None:
        self._client = client
        self._prefix = f"{job}/"

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        return self._client.filter_log_events(**kwargs, logStreamNamePrefix=self._prefix)


def _missing_group(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException")


def print_job_logs(client: LogsClient, printer: Printer, lines: int) -> bool:
    """The job's events so far (the last `lines`), oldest first; False when it has no logs yet."""
    try:
        events = Follower(client, JOBS_GROUP, 0).poll()
    except ClientError as exc:
        if not _missing_group(exc):
            raise
        return False
    printer.write(events[-lines:])
    return bool(events)


def follow_job(
    client: LogsClient,
    printer: Printer,
    status: Callable[[], str],
    *,
    since_ms: int,
    backlog: int,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Print the job's last `backlog` events of the past `since_ms`, then every new one, until the job has
    ended (a last poll then picks up its final lines); the status it ended with."""
    follower = Follower(client, JOBS_GROUP, now_ms() - since_ms)
    first, last_status_at, state = True, clock(), status()
    while True:
        try:
            events = follower.poll()
        except ClientError as exc:
            if not _missing_group(exc):
                raise
            events = []  # no instance has written yet
        if first:  # what was there before: only the last `backlog` events
            events, first = (events[-backlog:] if backlog else []), False
        printer.write(events)
        if state in ENDED:
            return state
        sleep(POLL_INTERVAL_S)
        if clock() - last_status_at >= STATUS_EVERY_S:
            last_status_at, state = clock(), status()


@click.group()
def jobs() -> None:
    """Batch transform jobs: list them, show one with its progress, print or follow its logs."""


def _url_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--url", envvar="MODELHOST_URL", default=None,
                        help="server URL (env MODELHOST_URL; default http://127.0.0.1:8080)")(func)  # fmt: skip


@jobs.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table")
@_url_option
def jobs_ls(as_json: bool, url: str | None) -> None:
    """List transform jobs, newest first: status, objects done/total, records done, records/s."""
    sm, _ = clients(server_url(url))
    rows = job_rows(sm)
    if as_json:
        click.echo(json.dumps({"jobs": rows}, indent=2))
    elif not rows:
        click.echo("(none)")
    else:
        click.echo("\n".join(render_rows(rows)))


@jobs.command(name="describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True,
              help="the whole DescribeTransformJob answer, ModelhostProgress included")  # fmt: skip
@_url_option
def jobs_describe(name: str, as_json: bool, url: str | None) -> None:
    """Show a transform job: status, failure reason, input and output, progress."""
    sm, _ = clients(server_url(url))
    answer = described(sm, name)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo("\n".join(render_description(answer)))


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


@jobs.command(name="logs")
@click.argument("name")
@click.option("--lines", "-n", default=200, show_default=True, type=click.IntRange(min=0),
              help="the last events to print (with -f: of those from before it started)")  # fmt: skip
@click.option("--follow", "-f", "following", is_flag=True,
              help="keep printing new events until the job ends (CloudWatch Logs FilterLogEvents)")  # fmt: skip
@click.option("--since", default="10m", show_default=True, help="with -f: how far back to start (30s, 10m, 1h)")
@_url_option
def jobs_logs(name: str, lines: int, following: bool, since: str, url: str | None) -> None:
    """Print the job's worker logs (every instance, `[job/instance]` prefixed); -f follows them."""
    base = server_url(url)
    sm, _ = clients(base)
    job = str(described(sm, name).get("TransformJobName", name))  # its name as created: the streams' prefix
    client = OneJob(service_client(base, "logs"), job)
    printer = Printer(sys.stdout, colour=_colour())
    try:
        if not following:
            if lines == 0:
                raise click.BadParameter("must be at least 1 without --follow", param_hint="--lines")
            if not print_job_logs(client, printer, lines):
                click.echo(f"(no logs yet for transform job {job})", err=True)
            return
        try:
            since_ms = parse_duration(since) * 1000
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None

        def status() -> str:
            return str(described(sm, job).get("TransformJobStatus", ""))

        ended = follow_job(client, printer, status, since_ms=since_ms, backlog=lines)
        click.echo(f"transform job {job} is {ended}", err=True)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
