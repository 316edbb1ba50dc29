"""Incremental detokenization: the text each new token adds, correct for byte-level and sentencepiece tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]  # token ids -> text (special tokens skipped)

_PROMPT_CONTEXT_TOKENS = 5  # prompt tokens kept as left context, so a leading "▁" decodes as a space


class IncrementalDetokenizer:
    """Decodes a short window of recent tokens twice and emits the difference.

    A token that ends inside a multi-byte character decodes to U+FFFD; its text is held back until a later
    token completes the character (or `flush` gives up at the end of the sequence).
    """

    def __init__(self, decode: Decode, prompt_token_ids: Sequence[int] = ()) -> None:
        self._decode = decode
        self._ids = list(prompt_token_ids[-_PROMPT_CONTEXT_TOKENS:])
        self._prefix = 0  # window start: tokens before it are fully emitted and no longer decoded
        self._read = len(self._ids)  # tokens before it have had their text emitted

    def push(self, token_id: int) -> str:
        """Add one generated token; returns the new text (possibly "")."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        full_text = self._decode(self._ids[self._prefix :])
        if len(full_text) > len(prefix_text) and not full_text.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return full_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Text still held back (an incomplete character decodes as U+FFFD); the window is then emptied."""
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        full_text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return full_text[len(prefix_text) :] if full_text.startswith(prefix_text) else ""
