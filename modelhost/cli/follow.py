"""Following an endpoint's log group through the CloudWatch Logs API, as `aws logs tail --follow` does.

Every poll is FilterLogEvents over the whole group (so instances that start later are picked up) from a start
time, paged until no nextToken is left; events already shown are known by their eventId. The start time trails
the newest event shown by `LATE_MS`, so a line another instance wrote a little earlier but flushed later is
still found; ids older than the start time are forgotten, since no answer can hold them again.

An event can grow after it was shown: modelhost's events are lines of the instances' log files, and lines
without a timestamp of their own (a model's `print`, a traceback being written) continue the event before
them under the same eventId. Such an event is shown again with only its new part.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Protocol, TextIO

import click

LATE_MS = 10_000
COLOURS = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_cyan", "bright_magenta", "bright_yellow",
           "bright_green", "bright_blue", "bright_red")  # fmt: skip


class LogsClient(Protocol):
    """The one call of boto3's `logs` client used here."""

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]: ...


class Follower:
    """The events of one log group not yet returned, poll after poll."""

    def __init__(self, client: LogsClient, group: str, start_ms: int, late_ms: int = LATE_MS) -> None:
        self._client = client
        self._group = group
        self.start_ms = start_ms  # the next poll's startTime (epoch ms)
        self._late_ms = late_ms
        self._seen: dict[str, tuple[int, int]] = {}  # eventId -> (timestamp, characters shown), at/after start_ms

    def _pages(self) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {"logGroupName": self._group, "startTime": self.start_ms, "interleaved": True}
        tokens: set[str] = set()
        while True:
            page = self._client.filter_log_events(**request)
            yield page
            token = page.get("nextToken")
            if not token or token in tokens:
                return
            tokens.add(token)
            request["nextToken"] = token

    def poll(self) -> list[dict[str, Any]]:
        """The group's events since the start time that no earlier poll returned, oldest first."""
        new = []
        for page in self._pages():
            for event in page.get("events", []):
                fresh = self._unseen_part(event)
                if fresh is not None:
                    new.append(fresh)
        new.sort(key=lambda e: int(e["timestamp"]))  # stable: the API's order within a millisecond
        if self._seen:
            self.start_ms = max(self.start_ms, max(ts for ts, _ in self._seen.values()) - self._late_ms)
            self._seen = {i: seen for i, seen in self._seen.items() if seen[0] >= self.start_ms}
        return new

    def _unseen_part(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The event if it is new, the event with only its new lines if it grew, else None."""
        message = str(event.get("message", ""))
        known = self._seen.get(event["eventId"])
        self._seen[event["eventId"]] = (int(event["timestamp"]), max(len(message), known[1] if known else 0))
        if known is None:
            return event
        if len(message) <= known[1]:
            return None
        rest = message[known[1] :].lstrip("\n")
        return {**event, "message": rest} if rest else None


class Printer:
    """Writes events with a `[stream]` prefix on every line, coloured per stream when asked."""

    def __init__(self, out: TextIO, colour: bool) -> None:
        self._out = out
        self._colour = colour
        self._colours: dict[str, str] = {}
        self._next = itertools.cycle(COLOURS)

    def prefix(self, stream: str) -> str:
        text = f"[{stream}]"
        if not self._colour:
            return text
        if stream not in self._colours:
            self._colours[stream] = next(self._next)
        return click.style(text, fg=self._colours[stream])

    def write(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            prefix = self.prefix(event.get("logStreamName", "?"))
            message = str(event.get("message", "")).rstrip("\n")
            for line in message.split("\n") or [""]:
                self._out.write(f"{prefix} {line}\n")
        self._out.flush()
