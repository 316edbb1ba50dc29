"""Input: one request (or the init call, or a batch) as handed to a DJL-style `handle(inputs)` function."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from .np_util import from_nd_list
from .pair_list import PairList

_BATCH_KEY = re.compile(r"^batch_(\d+)\.(.*)$", re.DOTALL)


class Input:
    """Properties (HTTP headers and engine values, as strings) plus content (an ordered key -> bytes list)."""

    def __init__(self) -> None:
        self.function_name: str | None = None
        self.properties: dict[str, Any] = {}
        self.content = PairList()

    def __str__(self) -> str:
        return f"Input(properties={self.properties!r}, content_keys={self.content.get_keys()!r})"

    __repr__ = __str__

    # -- properties -------------------------------------------------------------------------------
    def get_properties(self) -> dict[str, Any]:
        return self.properties

    def get_property(self, key: str) -> Any:
        """Case-insensitive property lookup; None when absent."""
        wanted = key.lower()
        return next((v for k, v in self.properties.items() if k.lower() == wanted), None)

    def get_function_name(self) -> str | None:
        return self.function_name if self.function_name is not None else self.properties.get("handler")

    # -- content ----------------------------------------------------------------------------------
    def get_content(self) -> PairList:
        return self.content

    def is_empty(self) -> bool:
        return self.content.is_empty()

    def contains_key(self, key: str) -> bool:
        return self.content.get(key) is not None

    def get_as_bytes(self, key: str | None = None) -> bytearray | None:
        """The entry named `key` (KeyError if missing); without a key, `data`, else the first entry."""
        if self.content.is_empty():
            return None
        if key:
            value = self.content.get(key)
            if value is None:
                raise KeyError(f"requested data for key:{key} is not found!")
        else:
            value = self.content.get("data")
            if value is None:
                value = self.content.value_at(0)
        if isinstance(value, str):
            value = value.encode("utf-8")
        return value if isinstance(value, bytearray) else bytearray(value)

    def get_as_string(self, key: str | None = None) -> str:
        data = self.get_as_bytes(key=key)
        if data is None:
            raise ValueError("the input has no content")
        return data.decode("utf-8")

    def get_as_json(self, key: str | None = None) -> Any:
        return json.loads(self.get_as_string(key=key))

    def get_as_csv(self, key: str | None = None) -> list[dict[str, str]]:
        import csv

        return list(csv.DictReader(io.StringIO(self.get_as_string(key=key))))

    def get_as_numpy(self, key: str | None = None) -> list[Any]:
        data = self.get_as_bytes(key=key)
        if data is None:
            raise ValueError("the input has no content")
        return from_nd_list(data)

    def get_as_npz(self, key: str | None = None) -> list[Any]:
        import numpy

        npz = numpy.load(io.BytesIO(bytes(self.get_as_bytes(key=key) or b"")))
        return [npz[name] for name in npz.files]

    def get_as_image(self, key: str | None = None) -> Any:
        from PIL import Image  # type: ignore[import-not-found,unused-ignore]

        return Image.open(io.BytesIO(bytes(self.get_as_bytes(key=key) or b"")))

    def get_data(self, key: str | None = None) -> Any:
        """Decode by the `content-type` property: ndlist, npz, JSON, text, image, else raw bytes."""
        content_type = self.get_property("content-type")
        if content_type == "tensor/ndlist":
            return self.get_as_numpy(key)
        if content_type == "tensor/npz":
            return self.get_as_npz(key)
        if content_type is not None and content_type.startswith("application/json"):
            return self.get_as_json(key)
        if content_type is not None and content_type.startswith("text/"):
            return self.get_as_string(key)
        if content_type is not None and content_type.startswith("image/"):
            return self.get_as_image(key)
        if self.content.is_empty():
            return None
        return self.get_as_bytes(key=key)

    # -- dynamic batching -------------------------------------------------------------------------
    def is_batch(self) -> bool:
        return "batch_size" in self.properties

    def get_batch_size(self) -> int:
        return int(self.properties.get("batch_size", "1"))

    def get_batches(self) -> list[Input]:
        """Split a batch (`batch_000.<name>` properties and content) into one Input per request."""
        if not self.is_batch():
            return [self]
        batch = [Input() for _ in range(self.get_batch_size())]
        for key, value in self.properties.items():
            match = _BATCH_KEY.match(key)
            if match:
                batch[int(match.group(1))].properties[match.group(2)] = value
        for key, value in self.content:
            match = _BATCH_KEY.match(key)
            if match:
                batch[int(match.group(1))].content.add(match.group(2), value)
        return batch
