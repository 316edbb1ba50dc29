"""DJL's NDList binary format (tensor/ndlist) <-> lists of numpy arrays; numpy is imported only when used."""

from __future__ import annotations

import io
import struct
from typing import Any

MAGIC_NUMBER = "NDAR"
VERSION = 3


def _pack_str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">h", len(raw)) + raw


class _Reader:
    """A cursor over an encoded buffer, reading DJL's big-endian primitives."""

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = bytes(data)
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated NDList data")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def string(self) -> str:
        length = int(struct.unpack(">h", self.take(2))[0])
        return self.take(length).decode("utf-8")


def from_nd_list(encoded: bytes | bytearray) -> list[Any]:
    """Decode an NDList (or an .npz archive, recognised by its `PK` zip header) into numpy arrays."""
    import numpy as np

    if len(encoded) >= 4 and encoded[:2] == b"PK":
        npz = np.load(io.BytesIO(bytes(encoded)))
        return [npz[name] for name in npz.files]
    reader = _Reader(encoded)
    arrays = []
    for _ in range(reader.int32()):
        magic = reader.string()
        if magic != MAGIC_NUMBER:
            raise ValueError(f"magic number is not {MAGIC_NUMBER}, actual {magic}")
        version = reader.int32()
        if version != VERSION:
            raise ValueError(f"require version {VERSION}, actual {version}")
        if reader.byte() == 1:
            reader.string()  # the array's name
        reader.string()  # sparse format, always "default"
        dtype = reader.string().lower()
        shape = tuple(reader.int64() for _ in range(reader.int32()))
        for _ in range(reader.int32()):
            reader.take(2)  # layout characters
        order = chr(reader.byte())
        data = reader.take(reader.int32())
        item_dtype = np.dtype(dtype).newbyteorder(order)  # type: ignore[arg-type]
        arrays.append(np.frombuffer(data, dtype=item_dtype).reshape(shape))
    return arrays


def to_nd_list(arrays: Any) -> bytearray:
    """Encode one numpy array or a list of them as DJL's NDList bytes (little-endian data)."""
    import numpy as np

    if not isinstance(arrays, list):
        arrays = [arrays]
    out = bytearray(struct.pack(">i", len(arrays)))
    for array in arrays:
        nd = np.asarray(array)
        out += _pack_str(MAGIC_NUMBER)
        out += struct.pack(">i", VERSION)
        out.append(0)  # no name
        out += _pack_str("default")
        out += _pack_str(str(nd.dtype).upper())
        out += struct.pack(">i", nd.ndim)
        for dim in nd.shape:
            out += struct.pack(">q", dim)
        out += struct.pack(">i", nd.ndim)
        for _ in nd.shape:
            out += struct.pack(">h", ord("?"))
        out.append(ord("<"))
        data = np.ascontiguousarray(nd, dtype=nd.dtype.newbyteorder("<")).tobytes()
        out += struct.pack(">i", len(data))
        out += data
    return out
