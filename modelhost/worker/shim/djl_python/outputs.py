"""Output: what a DJL-style handler returns; code/message become the HTTP status, properties the headers."""

from __future__ import annotations

import datetime
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .np_util import to_nd_list
from .pair_list import PairList


def _json_default(value: Any) -> Any:
    """Make numpy scalars and arrays and datetimes JSON-serialisable (numpy is never imported here)."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if type(value).__module__ == "numpy":
        if hasattr(value, "tolist"):
            return value.tolist()
        if hasattr(value, "item"):
            return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode(value: Any) -> bytes | bytearray:
    """str as UTF-8, bytes as they are, anything else as JSON."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return value
    return json.dumps(value, default=_json_default).encode("utf-8")


def _default_stream_output_formatter(item: Any) -> bytes:
    """A yielded list of token strings becomes the JSON line `{"outputs": [...]}`."""
    return (json.dumps({"outputs": item}, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8")


def _content_key(key: str | None, batch_index: int | None) -> str:
    name = key if key is not None else "data"
    return name if batch_index is None else f"batch_{batch_index}.{name}"


class Output:
    """The response of a handler call; chainable setters follow DJL's API."""

    def __init__(self, code: int = 200, message: str = "OK") -> None:
        self.code = code
        self.message = message
        self.properties: dict[str, Any] = {}
        self.content = PairList()
        self.stream_content: Iterable[Any] | Iterator[Any] | None = None
        self.stream_content_formatter: Callable[[Any], Any] | None = None
        self._finalize: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def __str__(self) -> str:
        return f"Output(code={self.code}, message={self.message!r}, properties={self.properties!r})"

    __repr__ = __str__

    def set_code(self, code: int) -> Output:
        self.code = code
        return self

    def set_message(self, message: str) -> Output:
        self.message = message
        return self

    def get_code(self) -> int:
        return self.code

    def get_message(self) -> str:
        return self.message

    def error(
        self,
        error: str,
        code: int = 424,
        message: str = "invoke handler failure",
        key: str | None = None,
        batch_index: int | None = None,
    ) -> Output:
        """Mark the output failed: JSON body `{"code", "message", "error"}` and a JSON content type."""
        self.code = code
        self.message = message
        self.add_property("content-type", "application/json")
        return self.add_as_json({"code": code, "message": message, "error": error}, key=key, batch_index=batch_index)

    def add_property(self, key: str, val: Any) -> Output:
        self.properties[key] = val
        return self

    def get_properties(self) -> dict[str, Any]:
        return self.properties

    def get_property(self, key: str) -> Any:
        wanted = key.lower()
        return next((v for k, v in self.properties.items() if k.lower() == wanted), None)

    def get_content(self) -> PairList:
        return self.content

    def add(self, value: Any, key: str | None = None, batch_index: int | None = None) -> Output:
        """Append a content entry: str -> UTF-8, bytes as is, else JSON; `batch_index` routes it."""
        self.content.add(_content_key(key, batch_index), _encode(value))
        return self

    def add_as_json(self, val: Any, key: str | None = None, batch_index: int | None = None) -> Output:
        text = json.dumps(
            val, ensure_ascii=False, allow_nan=False, indent=2, separators=(",", ":"), default=_json_default
        )
        self.content.add(_content_key(key, batch_index), text.encode("utf-8"))
        return self

    def add_as_numpy(self, np_list: Any, key: str | None = None, batch_index: int | None = None) -> Output:
        self.content.add(_content_key(key, batch_index), to_nd_list(np_list))
        return self

    def add_as_npz(self, np_list: Any, key: str | None = None, batch_index: int | None = None) -> Output:
        import numpy

        buffer = io.BytesIO()
        arrays = np_list if isinstance(np_list, list) else [np_list]
        numpy.savez(buffer, *arrays)
        self.content.add(_content_key(key, batch_index), buffer.getvalue())
        return self

    def add_stream_content(
        self,
        stream: Iterable[Any] | Iterator[Any],
        output_formatter: Callable[[Any], Any] | None = _default_stream_output_formatter,
    ) -> Output:
        """Stream the response: each item `stream` yields is formatted and sent as one chunk."""
        self.stream_content = stream
        self.stream_content_formatter = output_formatter
        return self

    def finalize(self, fn: Callable[..., Any], *args: Any) -> Output:
        """Run `fn(*args)` after the response has been sent."""
        self._finalize.append((fn, args))
        return self

    def execute_finalize(self) -> None:
        """Called by the server once the response is out; a failing callback is only logged."""
        callbacks, self._finalize = self._finalize, []
        for fn, args in callbacks:
            try:
                fn(*args)
            except Exception:
                logging.getLogger(__name__).exception("finalize callback %r failed", fn)

    def encode_stream_item(self, item: Any) -> bytes | bytearray:
        """One streamed item through the formatter (raw when it is None), as bytes for the wire."""
        if self.stream_content_formatter is not None:
            item = self.stream_content_formatter(item)
        return _encode(item)
