"""`modelhost top`: a live table of every endpoint variant from the server's /metrics, redrawn in place.

On a terminal the table is redrawn every `--interval` seconds on the alternate screen (plain ANSI, as `watch`
does) until Ctrl-C; with `--once`, or when standard output is not a terminal, two scrapes `--interval` apart give
one snapshot and the command exits. `--json` prints the snapshot as JSON (one object per line when live).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn, TextIO

import click
import httpx

from modelhost.cli.client import aws_error, server_url, signed_get
from modelhost.cli.scrape import Scrape, parse_scrape
from modelhost.cli.top_view import TopSnapshot, render_table, snapshot

ENTER_SCREEN, LEAVE_SCREEN = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"  # alternate screen, cursor hidden
HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"


class ScrapeFailed(Exception):
    """The server's /metrics could not be read; the message is one line for the user."""


def scrape(base: str, clock: Callable[[], float] = time.monotonic) -> Scrape:
    """GET /metrics, signed with the CLI's key (the server checks cloudwatch:GetMetricData once it has keys)."""
    try:
        response = signed_get(f"{base}/metrics", {}, "monitoring")
    except httpx.HTTPError as exc:
        raise ScrapeFailed(f"cannot reach the modelhost server at {base} ({exc})") from None
    refusal = aws_error(response)
    if refusal is not None:
        raise ScrapeFailed(refusal)
    if response.status_code != 200:
        raise ScrapeFailed(f"GET /metrics answered {response.status_code}: {response.text.strip()[:200]}")
    try:
        return parse_scrape(response.text, clock())
    except ValueError as exc:
        raise ScrapeFailed(f"GET /metrics did not answer the Prometheus text format ({exc})") from None


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def frame(top: TopSnapshot | None, base: str, interval_s: float, note: str, width: int) -> str:
    """One screenful: a title line, the table (or what we wait for), each line cut to the terminal's width."""
    stamp = datetime.now().strftime("%H:%M:%S")
    lines = [f"modelhost top  {base}  every {interval_s:g}s  {stamp}  (Ctrl-C quits)", ""]
    lines += render_table(top) if top is not None else ["waiting for a second scrape..."]
    if note:
        lines += ["", note]
    return HOME + "".join(line[:width] + CLEAR_LINE + "\n" for line in lines) + CLEAR_BELOW


def run_live(base: str, interval_s: float, as_json: bool, out: TextIO) -> None:
    """Scrape every interval and redraw (or print a JSON line) until interrupted; a failed scrape is shown and
    retried, the last table kept."""
    previous: Scrape | None = None
    top: TopSnapshot | None = None
    if not as_json:
        out.write(ENTER_SCREEN)
    try:
        while True:
            note = ""
            try:
                current = scrape(base)
                if previous is not None:
                    top = snapshot(previous, current)
                    if as_json:
                        out.write(json.dumps(_json(top, base)) + "\n")
                previous = current
            except ScrapeFailed as exc:
                note = f"error: {exc} (retrying)"
                if as_json:
                    click.echo(note, err=True)
            if not as_json:
                out.write(frame(top, base, interval_s, note, shutil.get_terminal_size().columns))
            out.flush()
            time.sleep(interval_s)
    except KeyboardInterrupt:
        pass
    finally:
        if not as_json:
            out.write(LEAVE_SCREEN)
            out.flush()


def _json(top: TopSnapshot, base: str) -> dict[str, object]:
    return {"url": base, "time": datetime.now(UTC).isoformat(timespec="seconds"), **top.to_json()}


def run_once(base: str, interval_s: float, as_json: bool, out: TextIO) -> None:
    try:
        before = scrape(base)
        time.sleep(interval_s)
        top = snapshot(before, scrape(base))
    except ScrapeFailed as exc:
        _fail(str(exc), code=2)
    if as_json:
        out.write(json.dumps(_json(top, base), indent=2) + "\n")
    else:
        out.write("\n".join(render_table(top)) + "\n")


@click.command()
@click.option("--interval", "-i", default=1.0, show_default=True, type=click.FloatRange(min=0.1),
              help="seconds between refreshes (and between the two scrapes of --once)")  # fmt: skip
@click.option("--once", is_flag=True, help="print one snapshot and exit (the default without a terminal)")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table (one object per line when live)")
@click.option("--url", envvar="MODELHOST_URL", default=None, help="server URL (env MODELHOST_URL)")
def top(interval: float, once: bool, as_json: bool, url: str | None) -> None:
    """Live table of every endpoint variant: instances, req/s, p50/p99 model latency, tok/s, errors/s, CPU, memory."""
    base = server_url(url)
    try:
        if once or not sys.stdout.isatty():
            run_once(base, interval, as_json, sys.stdout)
        else:
            run_live(base, interval, as_json, sys.stdout)
    except KeyboardInterrupt:  # during --once's wait
        sys.exit(130)
