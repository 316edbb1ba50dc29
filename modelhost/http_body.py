"""Reading a request body under a size limit, stopping as soon as the limit is passed (never buffering more),
and the check on header values that are forwarded to workers.

Every route that reads a body goes through `read_limited`: a declared `Content-Length` above the limit is
refused before a byte is read, and a chunked or lying body is refused at the first chunk that passes it.
After a refusal the server answers and closes the connection without reading the rest.
"""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The body is (or says it is) larger than the limit; `size_bytes` is what was seen or declared."""

    def __init__(self, size_bytes: int, limit_bytes: int, *, declared: bool) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        self.declared = declared
        what = f"declares {size_bytes} bytes, over" if declared else "is over"
        super().__init__(f"The request body {what} the {limit_bytes}-byte limit")


def declared_length(value: str | None) -> int | None:
    """A Content-Length header as a byte count; None when absent or not a plain decimal number."""
    if value is None or not value.strip().isdigit() or len(value.strip()) > 20:
        return None
    return int(value.strip())


async def read_limited(request: Request, limit_bytes: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as more than `limit_bytes` arrive (or are declared)."""
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > limit_bytes:
        raise BodyTooLarge(declared, limit_bytes, declared=True)
    parts: list[bytes] = []
    size_bytes = 0
    async for chunk in request.stream():
        size_bytes += len(chunk)
        if size_bytes > limit_bytes:
            raise BodyTooLarge(size_bytes, limit_bytes, declared=False)
        parts.append(chunk)
    return b"".join(parts)


def printable_ascii(value: str) -> bool:
    """True when a header value holds only visible US-ASCII, spaces and tabs (what SageMaker's runtime
    headers allow, and all a forwarded request can carry); Starlette hands other bytes over as Latin-1."""
    return all(" " <= ch <= "~" or ch == "\t" for ch in value)
