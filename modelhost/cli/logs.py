"""`modelhost logs ENDPOINT [-f]`: the endpoint's logs, printed once from the server's logs route or followed
through the CloudWatch Logs API (FilterLogEvents, every instance with a `[Variant/instance]` prefix)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import NoReturn, TextIO
from urllib.parse import quote

import click
import httpx
from botocore.exceptions import ClientError

from modelhost.cli.client import aws_error, server_url, service_client, signed_get
from modelhost.cli.follow import Follower, LogsClient, Printer
from modelhost.cli.metrics_view import parse_duration

GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
POLL_INTERVAL_S = 1.0


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def print_once(base: str, endpoint: str, lines: int) -> None:
    """The last `lines` lines of the controller's log and of every instance's, from /_modelhost/.../logs."""
    try:
        route = f"{base}/_modelhost/endpoints/{quote(endpoint, safe='')}/logs"
        response = signed_get(route, {"lines": lines}, "logs")
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the modelhost server at {base} ({exc})", code=2)
    refusal = aws_error(response)
    if refusal is not None:
        _fail(refusal)
    if response.status_code >= 400:
        _fail(response.text.strip())
    sys.stdout.write(response.text)


def follow(
    client: LogsClient,
    group: str,
    printer: Printer,
    *,
    since_ms: int,
    backlog: int,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the last `backlog` events of the past `since_ms`, then every new one, until the log group is gone
    (the endpoint was deleted) or the caller interrupts. A group missing at the start is the API's error."""
    follower = Follower(client, group, now_ms() - since_ms)
    events = follower.poll()
    printer.write(events[-backlog:] if backlog else [])
    while True:
        sleep(POLL_INTERVAL_S)
        try:
            printer.write(follower.poll())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            click.echo(f"the log group {group} is gone (the endpoint was deleted)", err=True)
            return


def _colour(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ


@click.command()
@click.argument("endpoint")
@click.option("--lines", "-n", default=200, show_default=True, type=click.IntRange(min=0),
              help="lines per log; with -f, events shown from before it started")  # fmt: skip
@click.option("--follow", "-f", "following", is_flag=True,
              help="keep printing new events of every instance (CloudWatch Logs FilterLogEvents)")  # fmt: skip
@click.option("--since", default="10m", show_default=True, help="with -f: how far back to start (30s, 10m, 1h)")
@click.option("--url", envvar="MODELHOST_URL", default=None, help="server URL (env MODELHOST_URL)")
def logs(endpoint: str, lines: int, following: bool, since: str, url: str | None) -> None:
    """Print the endpoint's logs (the controller's and every instance's); -f follows them."""
    base = server_url(url)
    if not following:
        if lines == 0:
            raise click.BadParameter("must be at least 1 without --follow", param_hint="--lines")
        print_once(base, endpoint, lines)
        return
    try:
        since_ms = parse_duration(since) * 1000
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    printer = Printer(sys.stdout, colour=_colour(sys.stdout))
    try:
        follow(service_client(base, "logs"), GROUP_PREFIX + endpoint, printer, since_ms=since_ms, backlog=lines)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
