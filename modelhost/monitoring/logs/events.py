"""A log file's bytes as CloudWatch events: where each event starts and ends, its time and its message.

An event begins at a line that starts with a recognised timestamp (timestamps.py); the lines after it that
have none (a traceback, a model's prints, the launcher's `[modelhost]` notes) belong to it, so a traceback
is one event. Lines before any timestamp take the `carry_ms` the reader is given (the file's first known
time, or the time of the event before). No event holds more than `MAX_EVENT_BYTES` of the file (CloudWatch's
256 KiB event, less its 26 bytes of overhead): a longer run of lines is cut before the line that would not
fit, a longer line into pieces of that size (on a UTF-8 character boundary); what follows a cut is an event
of its own with the same time. A last line without its newline is still being written and is not read yet.

Where an event starts depends only on the bytes before it, so reading from any event start gives the same
events as reading the whole file (the index's checkpoints rely on this). `EventAssembler` is the pure part;
`read_events` feeds it from a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import BinaryIO

from modelhost.monitoring.logs.timestamps import line_timestamp_ms

MAX_EVENT_BYTES = 256 * 1024 - 26


@dataclass(frozen=True, slots=True)
class LogEvent:
    offset: int  # byte offset of the event's first byte in its file (what tokens point at)
    end: int  # byte offset just past the event (its trailing newline included): where the next one starts
    timestamp_ms: int  # epoch milliseconds
    message: str  # the event's lines, without the trailing newline (invalid UTF-8 replaced)


class EventAssembler:
    """Turns a file's pieces (whole lines, or `MAX_EVENT_BYTES` pieces of a longer one) into events (pure)."""

    def __init__(self, carry_ms: int, local_zone: tzinfo | None = None) -> None:
        self.carry_ms = carry_ms  # the time of the last event seen: lines without one take it
        self._zone = local_zone
        self._start = -1  # offset of the event being assembled; -1: none
        self._time_ms = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._at_line_start = True

    def feed(self, offset: int, piece: bytes) -> LogEvent | None:
        """Add the piece at `offset`; returns the event it closes, if it closes one."""
        stamp = line_timestamp_ms(piece, self._zone) if self._at_line_start else None
        self._at_line_start = piece.endswith(b"\n")
        closed = None
        if self._start >= 0 and (stamp is not None or self._size + len(piece) > MAX_EVENT_BYTES):
            closed = self.close()
        if self._start < 0:
            self._start, self._time_ms = offset, self.carry_ms if stamp is None else stamp
            self.carry_ms = self._time_ms
        self._parts.append(piece)
        self._size += len(piece)
        return closed

    def close(self) -> LogEvent | None:
        """The event being assembled, ended here (None when there is none or its message is empty)."""
        if self._start < 0:
            return None
        raw = b"".join(self._parts)
        start = self._start
        self._start, self._parts, self._size = -1, [], 0
        body = raw[:-1] if raw.endswith(b"\n") else raw
        if body.endswith(b"\r"):
            body = body[:-1]
        if not body:
            return None
        return LogEvent(start, start + len(raw), self._time_ms, body.decode("utf-8", "replace"))


def _utf8_cut(piece: bytes) -> int:
    """Where to cut a piece that stops mid-line so that no UTF-8 character is split (its length if none is)."""
    for back in range(1, min(4, len(piece)) + 1):
        byte = piece[-back]
        if byte & 0xC0 != 0x80:  # the lead byte (or an ASCII byte) of the last character
            needed = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(piece) if needed <= back else len(piece) - back
    return len(piece)


def read_pieces(f: BinaryIO, start: int, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(offset, piece) from `start` on: whole lines, or `MAX_EVENT_BYTES` pieces of a longer line; stops before
    a last line that has no newline yet, and at `stop` (a piece boundary) when given."""
    f.seek(start)
    offset = start
    while stop is None or offset < stop:
        piece = f.readline(MAX_EVENT_BYTES if stop is None else min(MAX_EVENT_BYTES, stop - offset))
        if not piece:
            return
        if not piece.endswith(b"\n"):
            if len(piece) < MAX_EVENT_BYTES:
                return  # still being written
            cut = _utf8_cut(piece)
            if cut < len(piece):
                f.seek(offset + cut)
                piece = piece[:cut]
        yield offset, piece
        offset += len(piece)


def read_events(
    f: BinaryIO, start: int, carry_ms: int, local_zone: tzinfo | None = None, stop: int | None = None
) -> Iterator[LogEvent]:
    """The events from the event start `start` to the last complete line (or `stop`), in file order."""
    assembler = EventAssembler(carry_ms, local_zone)
    for offset, piece in read_pieces(f, start, stop):
        event = assembler.feed(offset, piece)
        if event is not None:
            yield event
    last = assembler.close()
    if last is not None:
        yield last

