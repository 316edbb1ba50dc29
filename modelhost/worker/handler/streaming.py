"""Streamed Outputs: iterate the handler's iterator on the handler thread, one HTTP chunk per item."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from modelhost.worker.handler.djl import Output
from modelhost.worker.handler.thread import HandlerThread, HandlerTimeout

log = logging.getLogger(__name__)

_END = object()


def _next_chunk(iterator: Iterator[Any], output: Output) -> Any:
    item = next(iterator, _END)
    return item if item is _END else bytes(output.encode_stream_item(item))


async def stream_chunks(output: Output, thread: HandlerThread, timeout_s: float) -> AsyncIterator[bytes]:
    """Yield each formatted item; an exception while iterating ends the stream with its text as the last
    chunk (the status line has already gone out), as DJL does."""
    iterator: Iterator[Any] | None = None
    try:
        iterator = await thread.run(iter, output.stream_content, timeout_s=timeout_s)
        while True:
            chunk = await thread.run(_next_chunk, iterator, output, timeout_s=timeout_s)
            if chunk is _END:
                return
            if chunk:
                yield chunk
    except HandlerTimeout as exc:
        message = f"streaming did not produce the next item within {exc.timeout_s:g} s (option.predict_timeout)"
        log.error("%s", message)
        yield message.encode("utf-8")
    except (asyncio.CancelledError, GeneratorExit):
        raise
    except Exception as exc:
        log.error("streaming handler failed: %s", exc, exc_info=exc)
        yield str(exc).encode("utf-8")
    finally:
        close = getattr(iterator, "close", None)
        if callable(close):
            thread.submit(close, timeout_s=timeout_s)
