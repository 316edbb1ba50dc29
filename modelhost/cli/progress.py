"""One status line that redraws itself on a terminal and prints changes only elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

SPINNER = "|/-\\"


class StatusLine:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._start = time.monotonic()
        self._last = ""
        self._tick = 0

    def update(self, text: str) -> None:
        elapsed = time.monotonic() - self._start
        if self._tty:
            self._tick += 1
            spin = SPINNER[self._tick % len(SPINNER)]
            self._stream.write(f"\r\033[K{spin} {text} ({elapsed:.0f}s)")
            self._stream.flush()
        elif text != self._last:
            self._stream.write(f"[{elapsed:5.0f}s] {text}\n")
            self._stream.flush()
        self._last = text

    def done(self, text: str) -> None:
        elapsed = time.monotonic() - self._start
        prefix = "\r\033[K" if self._tty else ""
        self._stream.write(f"{prefix}{text} ({elapsed:.0f}s)\n")
        self._stream.flush()
