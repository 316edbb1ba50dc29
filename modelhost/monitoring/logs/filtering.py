"""FilterLogEvents: the events of several streams that match a filter pattern, interleaved by time.

Each stream is read forward from where the last page stopped (the nextToken holds a byte offset per stream
not yet searched completely); the merge always takes the earliest event any stream has ready, so pages come
in time order across streams. A page ends at `limit` events, 1 MB of events or `MAX_SCAN_BYTES` read; the
eventId (timestamp, stream, offset) is the same every time an event is returned, which is how `aws logs tail
--follow` drops the events it has already shown when it asks again from the newest timestamp.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

from modelhost.monitoring.logs import tokens
from modelhost.monitoring.logs.errors import STREAM_NOT_FOUND, InvalidParameter, ResourceNotFound
from modelhost.monitoring.logs.event_ops import DEFAULT_EVENTS_LIMIT, window_of
from modelhost.monitoring.logs.events import LogEvent
from modelhost.monitoring.logs.filter_pattern import FilterPattern, parse_filter_pattern
from modelhost.monitoring.logs.groups import LogsContext, named_group, naming_hint
from modelhost.monitoring.logs.reading import Budget, Window
from modelhost.monitoring.logs.store import LogGroup, LogStream

OPERATION = "FilterLogEvents"


def event_id(stream_name: str, event: LogEvent) -> str:
    """A stable id of digits (as CloudWatch's): the event's time, its stream and its offset."""
    stream = int(hashlib.sha256(stream_name.encode()).hexdigest()[:16], 16) % 10**20
    return f"{event.timestamp_ms:015d}{stream:020d}{event.offset:020d}"


class _Cursor:
    """One stream being searched: its next matching event (`head`) and where its search goes on."""

    def __init__(self, order: int, slot: int, stream: LogStream, events: Iterator[LogEvent], end: int) -> None:
        self.order = order  # the stream's place by name: ties in time go to the first
        self.slot = slot  # its place in the list of cursors
        self.stream = stream
        self._events = events
        self._end = end
        self.head: LogEvent | None = None
        self.position = 0  # where the search goes on when `head` is None and it is not done
        self.done = False

    def advance(self, pattern: FilterPattern, window: Window, budget: Budget) -> None:
        self.head = None
        for event in self._events:
            budget.read(event)
            if window.holds(event) and pattern.matches(event.message):
                self.head = event
                return
            self.position = event.end
            if budget.scan_left <= 0:
                return
        self.done, self.position = True, self._end

    @property
    def resume_at(self) -> int:
        return self.head.offset if self.head is not None else self.position


def _streams(ctx: LogsContext, group: LogGroup, params: dict[str, Any]) -> list[LogStream]:
    names, prefix = params.get("logStreamNames"), params.get("logStreamNamePrefix")
    if names is not None and prefix is not None:
        raise InvalidParameter("logStreamNames and logStreamNamePrefix cannot both be given; send one of them.")
    streams = ctx.store.streams(group)
    if names is not None:
        known = {s.name for s in streams}
        missing = [n for n in names if n not in known]
        if missing:
            raise ResourceNotFound(naming_hint(STREAM_NOT_FOUND, missing[0]))
        return [s for s in streams if s.name in set(names)]
    return [s for s in streams if prefix is None or s.name.startswith(prefix)]


def _resume_offsets(params: dict[str, Any]) -> dict[str, int] | None:
    position = tokens.parse_page_token(OPERATION, params)
    if position is None:
        return None
    if not isinstance(position, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in position.items()
    ):
        raise InvalidParameter("The specified nextToken was issued for a different request; call without it.")
    return position


def _open_cursors(
    ctx: LogsContext, files: ExitStack, streams: list[LogStream], resume: dict[str, int] | None, window: Window
) -> list[_Cursor]:
    cursors: list[_Cursor] = []
    for order, stream in enumerate(streams):
        if resume is not None and stream.name not in resume:
            continue  # searched completely by an earlier page
        try:
            f, index = files.enter_context(ctx.store.open(stream))
        except OSError:
            continue  # gone since it was listed
        start = min(0 if resume is None else resume[stream.name], index.end)
        events = index.events_from(f, start, window.start_ms, window.end_ms)
        cursor = _Cursor(order, len(cursors), stream, events, index.end)
        cursor.position = start
        cursors.append(cursor)
    return cursors


def _merge(cursors: list[_Cursor], pattern: FilterPattern, window: Window, budget: Budget) -> list[dict[str, Any]]:
    """The matching events of all cursors, earliest first, as many as the budget allows."""
    heap: list[tuple[int, int, int]] = []
    for cursor in cursors:
        if budget.scan_left > 0:
            cursor.advance(pattern, window, budget)
        if cursor.head is not None:
            heapq.heappush(heap, (cursor.head.timestamp_ms, cursor.order, cursor.slot))
    found: list[dict[str, Any]] = []
    while heap and not budget.spent:
        cursor = cursors[heapq.heappop(heap)[2]]
        event = cursor.head
        if event is None or not budget.fits(event):
            break
        budget.take(event)
        found.append({
            "logStreamName": cursor.stream.name,
            "timestamp": event.timestamp_ms,
            "message": event.message,
            "ingestionTime": event.timestamp_ms,
            "eventId": event_id(cursor.stream.name, event),
        })  # fmt: skip
        cursor.position = event.end
        cursor.advance(pattern, window, budget)
        if cursor.head is not None:
            heapq.heappush(heap, (cursor.head.timestamp_ms, cursor.order, cursor.slot))
    return found


def filter_log_events(ctx: LogsContext, params: dict[str, Any]) -> dict[str, Any]:
    group = named_group(ctx, params)
    if params.get("startFromHead") is False and params.get("nextToken") is None:
        raise InvalidParameter("FilterLogEvents here returns the earliest events first; omit startFromHead=false.")
    streams = _streams(ctx, group, params)
    pattern, window = parse_filter_pattern(params.get("filterPattern")), window_of(params)
    budget = Budget(params.get("limit", DEFAULT_EVENTS_LIMIT))
    resume = _resume_offsets(params)
    with ExitStack() as files:
        cursors = _open_cursors(ctx, files, streams, resume, window)
        found = _merge(cursors, pattern, window, budget)
    pending = {c.stream.name: c.resume_at for c in cursors if not c.done}
    result: dict[str, Any] = {
        "events": found,
        "searchedLogStreams": [{"logStreamName": c.stream.name, "searchedCompletely": c.done} for c in cursors],
    }
    if pending:
        result["nextToken"] = tokens.page_token(OPERATION, params, pending)
    return result
