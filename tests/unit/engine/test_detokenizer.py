"""Incremental detokenization over a byte-level fake vocabulary: multi-byte characters, leading spaces."""

from __future__ import annotations

from collections.abc import Sequence

from modelhost.worker.engine.detokenizer import IncrementalDetokenizer

# token id -> bytes; "é" is two bytes, "😀" four, split over several tokens as byte-level BPE does.
VOCAB = {
    1: b"Hello",
    2: b" world",
    3: "é".encode()[:1],
    4: "é".encode()[1:],
    5: "😀".encode()[:2],
    6: "😀".encode()[2:3],
    7: "😀".encode()[3:],
    8: b"!",
    9: b"",
}


def decode(ids: Sequence[int]) -> str:
    return b"".join(VOCAB[i] for i in ids).decode("utf-8", errors="replace")


def stream(ids: list[int], prompt: Sequence[int] = ()) -> list[str]:
    detok = IncrementalDetokenizer(decode, prompt)
    return [detok.push(i) for i in ids]


def test_ascii_tokens_emit_their_text() -> None:
    assert stream([1, 2, 8]) == ["Hello", " world", "!"]


def test_two_byte_character_is_held_until_complete() -> None:
    assert stream([1, 3, 4, 8]) == ["Hello", "", "é", "!"]


def test_four_byte_emoji_over_three_tokens() -> None:
    assert stream([5, 6, 7, 2]) == ["", "", "😀", " world"]


def test_concatenation_equals_full_decode() -> None:
    ids = [1, 3, 4, 5, 6, 7, 2, 9, 8]
    assert "".join(stream(ids, prompt=[1, 2])) == decode(ids)


def test_flush_gives_up_on_incomplete_character() -> None:
    detok = IncrementalDetokenizer(decode)
    assert detok.push(1) == "Hello"
    assert detok.push(5) == ""
    assert detok.flush() == "\ufffd"
    assert detok.flush() == ""


def test_prompt_context_is_not_emitted() -> None:
    assert stream([2], prompt=[1]) == [" world"]
