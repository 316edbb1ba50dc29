"""Stop sequences on streamed text: cut before the match, and never emit text that may start a stop."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Filters a request's text deltas against its stop sequences.

    `push` returns the text that is safe to emit: a suffix that could be the start of a stop sequence is
    held back until the following text rules it in (stop: cut there) or out (emit it).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""

    def push(self, text: str) -> tuple[str, bool]:
        """Feed new text; returns (text to emit, whether a stop sequence matched)."""
        if not self._stops:
            return text, False
        buffer = self._pending + text
        hits = [i for i in (buffer.find(stop) for stop in self._stops) if i >= 0]
        if hits:
            self._pending = ""
            return buffer[: min(hits)], True
        hold = self._partial_suffix(buffer)
        self._pending = buffer[len(buffer) - hold :]
        return buffer[: len(buffer) - hold], False

    def flush(self) -> str:
        """The held-back text, released when generation ends for another reason."""
        pending, self._pending = self._pending, ""
        return pending

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest suffix of `buffer` that is a proper prefix of some stop sequence."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
