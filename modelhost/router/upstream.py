"""The three ways forwarding to a worker fails, and a small keep-alive HTTP/1.1 client for the router's hot
path: POST to a worker, read the whole answer.

httpx costs the single-threaded router several hundred microseconds a request; this client writes one
buffer and parses the answer with httptools (C), reusing connections per worker. Streaming answers still go
through httpx (router/forward.py puts both behind one interface raising the errors below).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

import httptools

MAX_IDLE_PER_ORIGIN = 64


class UpstreamError(Exception):
    """Forwarding to a worker failed; `str()` says what the transport saw."""


class UpstreamGone(UpstreamError):
    """The worker refused the connection or closed it before any byte of an answer: safe to send again."""


class UpstreamBroken(UpstreamError):
    """The worker closed the connection in the middle of its answer (or the exchange failed otherwise)."""


class UpstreamTimeout(UpstreamError):
    """The worker sent nothing for the invocation timeout."""


@dataclass(slots=True)
class UpstreamResponse:
    status_code: int
    headers: dict[str, str]  # lower-case names
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


@dataclass(slots=True)
class _Answer:
    """httptools' callbacks fill this in."""

    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes] = field(default_factory=list)
    complete: bool = False
    started: bool = False
    _name: bytes = b""

    def on_message_begin(self) -> None:
        self.started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class UpstreamPool:
    def __init__(self) -> None:
        self._idle: defaultdict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = defaultdict(
            list
        )

    async def post(
        self, host: str, port: int, path: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> UpstreamResponse:
        """POST and read the whole answer. Raises UpstreamGone (nothing was answered: safe to resend),
        UpstreamBroken (the answer was cut) or UpstreamTimeout."""
        try:
            return await self._post(host, port, path, headers, body, timeout_s)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer within {timeout_s:g} s") from exc

    async def _post(
        self, host: str, port: int, path: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> UpstreamResponse:
        head = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        origin = (host, port)
        while self._idle[origin]:  # a kept-alive connection the worker may have closed meanwhile: try it first
            reader, writer = self._idle[origin].pop()
            try:
                return await asyncio.wait_for(self._exchange(origin, reader, writer, request), timeout_s)
            except UpstreamGone:
                continue
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except OSError as exc:
            raise UpstreamGone(str(exc)) from exc
        return await asyncio.wait_for(self._exchange(origin, reader, writer, request), timeout_s)

    async def _exchange(
        self, origin: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> UpstreamResponse:
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        try:
            writer.write(request)
            await writer.drain()
            while not answer.complete:
                data = await reader.read(65536)
                if not data:
                    raise (UpstreamBroken if answer.started else UpstreamGone)("connection closed by the worker")
                parser.feed_data(data)
        except (OSError, httptools.HttpParserError) as exc:
            writer.close()
            raise (UpstreamBroken if answer.started else UpstreamGone)(str(exc)) from exc
        except BaseException:
            writer.close()  # cancelled or timed out mid-answer: the connection is in an unknown state
            raise
        if parser.should_keep_alive() and len(self._idle[origin]) < MAX_IDLE_PER_ORIGIN:
            self._idle[origin].append((reader, writer))
        else:
            writer.close()
        return UpstreamResponse(parser.get_status_code(), answer.headers, b"".join(answer.body))

    def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()
