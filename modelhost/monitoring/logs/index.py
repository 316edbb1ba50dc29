"""One log file's checkpoints: an event start about every `SEGMENT_BYTES`, with the time in effect there and
the range of times of the events after it, so that a read can start near any offset (the newest events are
found by seeking from the end) and skip the parts of the file outside a time range.

The index is extended with the bytes written since the last call (`refresh`) and rebuilt when the file was
replaced (another inode) or got shorter. Memory is a few dozen bytes per `SEGMENT_BYTES` of file. A
FileIndex is not thread-safe; the store refreshes it under a lock and readers copy the checkpoints.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import BinaryIO

from modelhost.monitoring.logs.events import LogEvent, read_events, read_pieces
from modelhost.monitoring.logs.timestamps import line_timestamp_ms

SEGMENT_BYTES = 256 * 1024
HEAD_SCAN_BYTES = 1024 * 1024  # how far the file's first known time is looked for


@dataclass(slots=True)
class Segment:
    offset: int  # an event start
    carry_ms: int  # the time that lines without one take at `offset` (the event before's)
    min_ms: int  # the earliest and latest time of the events starting in this segment
    max_ms: int


def first_known_ms(f: BinaryIO, local_zone: tzinfo | None) -> int | None:
    """The first timestamp a line of the file starts with, within its first HEAD_SCAN_BYTES."""
    at_line_start = True
    for offset, piece in read_pieces(f, 0):
        if offset >= HEAD_SCAN_BYTES:
            return None
        stamp = line_timestamp_ms(piece, local_zone) if at_line_start else None
        if stamp is not None:
            return stamp
        at_line_start = piece.endswith(b"\n")
    return None


class FileIndex:
    def __init__(self, local_zone: tzinfo | None = None) -> None:
        self._zone = local_zone
        self._reset(None, 0)

    def _reset(self, identity: tuple[int, int] | None, first_ms: int) -> None:
        self.identity = identity  # (device, inode) of the file indexed
        self.first_ms = first_ms  # the time of lines before any timestamp
        self.size_seen = 0  # the file's size when last refreshed
        self.end = 0  # just past the last complete line: where the newest event ends
        self.segments: list[Segment] = []
        self.offsets: list[int] = []  # the segments' offsets, for bisect
        self.min_ms: int | None = None  # over all events
        self.max_ms: int | None = None
        self.mtime_ms = 0
        self._resume = 0  # the last event's start: it may still grow, so parsing resumes there
        self._resume_carry = first_ms

    def refresh(self, f: BinaryIO) -> None:
        """Index what was written since the last call (all of it for a new or replaced file)."""
        stat = os.fstat(f.fileno())
        identity = (stat.st_dev, stat.st_ino)
        if identity != self.identity or stat.st_size < self.size_seen:
            mtime_ms = int(stat.st_mtime * 1000)
            first = first_known_ms(f, self._zone)
            self._reset(identity, mtime_ms if first is None else first)
        self.mtime_ms = int(stat.st_mtime * 1000)
        if stat.st_size == self.size_seen:
            return
        self.size_seen = stat.st_size
        carry = self._resume_carry
        for event in read_events(f, self._resume, carry, self._zone):
            self._add(event, carry)
            self._resume, self._resume_carry = event.offset, carry
            self.end = event.end
            carry = event.timestamp_ms

    def _add(self, event: LogEvent, carry_ms: int) -> None:
        stamp = event.timestamp_ms
        self.min_ms = stamp if self.min_ms is None else min(self.min_ms, stamp)
        self.max_ms = stamp if self.max_ms is None else max(self.max_ms, stamp)
        if not self.segments or event.offset >= self.segments[-1].offset + SEGMENT_BYTES:
            self.segments.append(Segment(event.offset, carry_ms, stamp, stamp))
            self.offsets.append(event.offset)
            return
        last = self.segments[-1]
        last.min_ms, last.max_ms = min(last.min_ms, stamp), max(last.max_ms, stamp)

    def _segment_at(self, offset: int) -> int:
        return bisect.bisect_right(self.offsets, offset) - 1

    def _carry_at(self, f: BinaryIO, offset: int) -> int:
        """The time in effect at `offset`: that of the event containing it or the last one before it."""
        k = self._segment_at(offset)
        if k < 0:
            return self.first_ms
        segment = self.segments[k]
        carry = segment.carry_ms
        if offset == segment.offset:
            return carry
        for event in read_events(f, segment.offset, carry, self._zone, self.end):
            if event.offset >= offset:
                break
            carry = event.timestamp_ms
        return carry

    def events_from(self, f: BinaryIO, offset: int, start_ms: int, end_ms: int) -> Iterator[LogEvent]:
        """The events from `offset` (an offset a token or an event gave) to the end, in file order; parts of
        the file whose events all lie outside [start_ms, end_ms) are skipped (the events yielded may still
        lie outside it: the caller filters)."""
        offset = min(max(offset, 0), self.end)
        segments, count = list(self.segments), len(self.segments)
        k = self._segment_at(offset)
        position, carry = offset, self._carry_at(f, offset)
        for j in range(max(k, 0), count) if count else ():
            segment = segments[j]
            upto = segments[j + 1].offset if j + 1 < count else None
            if j > k:
                if upto is not None and (segment.max_ms < start_ms or segment.min_ms >= end_ms):
                    continue
                position, carry = segment.offset, segment.carry_ms
            for event in read_events(f, position, carry, self._zone, self.end):
                if upto is not None and event.offset >= upto:
                    break
                yield event

    def events_before(
        self, f: BinaryIO, offset: int, start_ms: int, end_ms: int
    ) -> Iterator[tuple[int, list[LogEvent]]]:
        """(segment offset, its events that start before `offset`), newest segment first: how the newest
        events are found without reading the file from its start. Segments outside the time range are skipped."""
        offset = min(max(offset, 0), self.end)
        segments = list(self.segments)
        for j in range(self._segment_at(max(offset - 1, 0)), -1, -1):
            segment = segments[j]
            upto = segments[j + 1].offset if j + 1 < len(segments) else self.end
            if j + 1 < len(segments) and (segment.max_ms < start_ms or segment.min_ms >= end_ms):
                yield segment.offset, []
                continue
            batch = []
            for event in read_events(f, segment.offset, segment.carry_ms, self._zone, self.end):
                if event.offset >= min(upto, offset):
                    break
                batch.append(event)
            yield segment.offset, batch
