"""Bodies read under a limit: refused at the declared length or at the first chunk past the limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.types import Message

from modelhost.http_body import BodyTooLarge, declared_length, printable_ascii, read_limited


def request_of(chunks: Iterator[bytes], headers: dict[str, str] | None = None) -> tuple[Request, list[int]]:
    """A Request whose body arrives in `chunks`; the list counts the chunks the reader pulled."""
    pulled = [0]
    pending = list(chunks)

    async def receive() -> Message:
        pulled[0] += 1
        if not pending:
            return {"type": "http.request", "body": b"", "more_body": False}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw_headers, "query_string": b""}
    return Request(scope, receive), pulled


def test_a_body_under_the_limit_is_read_whole() -> None:
    request, _ = request_of(iter([b"ab", b"cd"]))
    assert asyncio.run(read_limited(request, 4)) == b"abcd"


def test_reading_stops_at_the_first_chunk_past_the_limit() -> None:
    request, pulled = request_of(iter([b"x" * 1024] * 1000))
    with pytest.raises(BodyTooLarge) as caught:
        asyncio.run(read_limited(request, 4096))
    assert pulled[0] == 5  # 4 KiB read, the fifth chunk passes the limit: the other 995 are never pulled
    assert "over the 4096-byte limit" in str(caught.value)


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    request, pulled = request_of(iter([b"x"]), {"content-length": "999999999"})
    with pytest.raises(BodyTooLarge) as caught:
        asyncio.run(read_limited(request, 10))
    assert pulled[0] == 0 and caught.value.declared and "declares 999999999 bytes" in str(caught.value)


def test_a_lying_content_length_does_not_help() -> None:
    request, _ = request_of(iter([b"x" * 20]), {"content-length": "5"})
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_limited(request, 10))


@pytest.mark.parametrize(("value", "length"), [("12", 12), (" 7 ", 7), ("-1", None), ("1e3", None), (None, None)])
def test_declared_length(value: str | None, length: int | None) -> None:
    assert declared_length(value) == length


def test_printable_ascii() -> None:
    assert printable_ascii("application/json; charset=utf-8") and printable_ascii("a\tb") and printable_ascii("")
    assert not printable_ascii("caf\u00e9") and not printable_ascii("a\x00b") and not printable_ascii("\u2603")
