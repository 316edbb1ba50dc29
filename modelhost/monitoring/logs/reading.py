"""Pages of one stream's events, forward from an offset or backward from one, within a time window and the
size CloudWatch gives a response (1 MB of events, `limit` events), without reading more of the file than
`MAX_SCAN_BYTES` per call: a page cut short by that says where to go on."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import BinaryIO

from modelhost.monitoring.logs.events import LogEvent
from modelhost.monitoring.logs.index import FileIndex

MAX_RESPONSE_BYTES = 1024 * 1024
EVENT_OVERHEAD_BYTES = 26  # what CloudWatch counts per event beside its message
MAX_SCAN_BYTES = 64 * 1024 * 1024
END_OF_TIME_MS = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Window:
    start_ms: int = 0  # events before it are left out
    end_ms: int = END_OF_TIME_MS  # events at or after it are left out

    def holds(self, event: LogEvent) -> bool:
        return self.start_ms <= event.timestamp_ms < self.end_ms


def event_bytes(event: LogEvent) -> int:
    return len(event.message.encode()) + EVENT_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class ForwardPage:
    events: list[LogEvent]
    position: int  # where the next page starts (after the last event read)


@dataclass(frozen=True, slots=True)
class BackwardPage:
    events: list[LogEvent]  # oldest first
    position: int  # the next older page ends here
    reached_start: bool  # nothing older is left to read


class Budget:
    """What one call may still return and read."""

    def __init__(self, limit: int, response_bytes: int = MAX_RESPONSE_BYTES, scan_bytes: int = MAX_SCAN_BYTES):
        self.events_left = limit
        self.response_left = response_bytes
        self.scan_left = scan_bytes

    def read(self, event: LogEvent) -> None:
        self.scan_left -= event.end - event.offset

    def fits(self, event: LogEvent) -> bool:
        return self.events_left > 0 and event_bytes(event) <= self.response_left

    def take(self, event: LogEvent) -> None:
        self.events_left -= 1
        self.response_left -= event_bytes(event)

    @property
    def spent(self) -> bool:
        return self.events_left <= 0 or self.scan_left <= 0


def read_forward(f: BinaryIO, index: FileIndex, offset: int, window: Window, budget: Budget) -> ForwardPage:
    """The events in `window` from `offset` on, in file order, as many as the budget allows."""
    events: list[LogEvent] = []
    position = min(max(offset, 0), index.end)
    for event in index.events_from(f, position, window.start_ms, window.end_ms):
        if window.holds(event):
            if not budget.fits(event):
                return ForwardPage(events, event.offset)
            budget.take(event)
            events.append(event)
        budget.read(event)
        position = event.end
        if budget.spent:
            return ForwardPage(events, position)
    return ForwardPage(events, index.end)


def read_backward(f: BinaryIO, index: FileIndex, offset: int, window: Window, budget: Budget) -> BackwardPage:
    """The newest events in `window` that start before `offset`, oldest first, as many as the budget allows."""
    newest_first: deque[LogEvent] = deque()
    position = min(max(offset, 0), index.end)
    for low, batch in index.events_before(f, position, window.start_ms, window.end_ms):
        for event in reversed(batch):
            budget.read(event)
            if not window.holds(event):
                continue
            if not budget.fits(event):
                oldest = newest_first[-1].offset if newest_first else position
                return BackwardPage(list(reversed(newest_first)), oldest, False)
            budget.take(event)
            newest_first.append(event)
            if budget.events_left <= 0:
                return BackwardPage(list(reversed(newest_first)), event.offset, False)
        position = low
        if budget.scan_left <= 0:
            return BackwardPage(list(reversed(newest_first)), position, position == 0)
    return BackwardPage(list(reversed(newest_first)), 0, True)
