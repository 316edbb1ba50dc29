"""GetLogEvents: one stream's events, forward or backward, with CloudWatch's f/ and b/ tokens."""

from __future__ import annotations

from typing import Any

from modelhost.monitoring.logs import tokens
from modelhost.monitoring.logs.errors import STREAM_NOT_FOUND, InvalidParameter, ResourceNotFound
from modelhost.monitoring.logs.events import LogEvent
from modelhost.monitoring.logs.groups import LogsContext, named_group, naming_hint
from modelhost.monitoring.logs.reading import END_OF_TIME_MS, Budget, Window, read_backward, read_forward

DEFAULT_EVENTS_LIMIT = 10_000


def window_of(params: dict[str, Any]) -> Window:
    start, end = params.get("startTime", 0), params.get("endTime", END_OF_TIME_MS)
    if start > end:
        raise InvalidParameter(f"startTime ({start}) must not be after endTime ({end}).")
    return Window(start, end)


def _shape(event: LogEvent) -> dict[str, Any]:
    return {"timestamp": event.timestamp_ms, "message": event.message, "ingestionTime": event.timestamp_ms}


def get_log_events(ctx: LogsContext, params: dict[str, Any]) -> dict[str, Any]:
    group = named_group(ctx, params)
    name = params["logStreamName"]
    stream = ctx.store.stream(group, name)
    if stream is None:
        raise ResourceNotFound(naming_hint(STREAM_NOT_FOUND, name))
    window, budget = window_of(params), Budget(params.get("limit", DEFAULT_EVENTS_LIMIT))
    token = params.get("nextToken")
    try:
        with ctx.store.open(stream) as (f, index):
            if token is not None:
                direction, offset = tokens.parse_stream_token(token, group.name, name)
            else:
                direction, offset = ("f", 0) if params.get("startFromHead", False) else ("b", index.end)
            if direction == "f":
                page = read_forward(f, index, offset, window, budget)
                events, forward, backward = page.events, page.position, page.events[0].offset if page.events else offset
            else:
                back = read_backward(f, index, offset, window, budget)
                events, forward = back.events, offset
                backward = offset if token is not None and not events and back.reached_start else back.position
    except FileNotFoundError:
        raise ResourceNotFound(naming_hint(STREAM_NOT_FOUND, name)) from None
    return {
        "events": [_shape(e) for e in events],
        "nextForwardToken": tokens.stream_token("f", forward, group.name, name),
        "nextBackwardToken": tokens.stream_token("b", backward, group.name, name),
    }
