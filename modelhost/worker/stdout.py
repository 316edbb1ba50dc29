"""A worker's standard output, one timestamped line at a time.

A model's `print()` goes to the worker's log beside its log records. Each complete line gets the time it was
written, in the records' form (`2026-12-02T00:50:28.052Z stdout: text`), so the CloudWatch Logs API makes each
printed line an event of its own at the moment it was printed, instead of continuing whatever record came
before it. Lines are written as they complete (nothing waits for a buffer to fill); a partial line is
held until its newline or the next flush. Writes to the underlying binary buffer or file descriptor (a
subprocess, `sys.stdout.buffer.write`) pass unstamped.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any, TextIO


def stamp(now: float | None = None) -> str:
    """UTC with milliseconds and its zone, as the worker's log records start."""
    moment = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1000):03d}Z"


class StampedLines(io.TextIOBase):
    """A text stream that writes each complete line to `target` with a timestamp in front."""

    def __init__(self, target: TextIO, label: str = "stdout") -> None:
        self._target = target
        self._label = label
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            if lines:
                now = stamp()
                self._target.write("".join(f"{now} {self._label}: {line}\n" for line in lines))
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._partial:
                self._target.write(f"{stamp()} {self._label}: {self._partial}\n")
                self._partial = ""
            self._target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target.encoding

    @property
    def buffer(self) -> Any:
        return self._target.buffer
