"""AWS event-stream messages for InvokeEndpointWithResponseStream (pure; PROTOCOL §2.3 framing).

A message is `total_length | headers_length | prelude_crc | headers | payload | message_crc`, integers
big-endian, CRCs IEEE CRC-32. Every header here is a string (type 7).
"""

from __future__ import annotations

import json
import struct
import zlib

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING_TYPE = 7
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024  # botocore refuses more than 24 MiB per message; split well below it


def _header(name: str, value: str) -> bytes:
    raw_name = name.encode("utf-8")
    raw_value = value.encode("utf-8")
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", _STRING_TYPE, len(raw_value)) + raw_value


def encode_message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One framed message with string headers, in the order given."""
    raw_headers = b"".join(_header(name, value) for name, value in headers)
    total = _PRELUDE.size + _CRC.size + len(raw_headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(raw_headers))
    head = prelude + _CRC.pack(zlib.crc32(prelude) & 0xFFFFFFFF) + raw_headers + payload
    return head + _CRC.pack(zlib.crc32(head) & 0xFFFFFFFF)


def payload_part(data: bytes) -> bytes:
    """`PayloadPart` event(s) carrying `data`; boto3 yields `{"PayloadPart": {"Bytes": data}}` for each."""
    headers = [
        (":event-type", "PayloadPart"),
        (":content-type", "application/octet-stream"),
        (":message-type", "event"),
    ]
    if len(data) <= MAX_PAYLOAD_BYTES:
        return encode_message(headers, data)
    return b"".join(
        encode_message(headers, data[i : i + MAX_PAYLOAD_BYTES]) for i in range(0, len(data), MAX_PAYLOAD_BYTES)
    )


def exception_event(exception_type: str, message: str, error_code: str | None = None) -> bytes:
    """A modeled exception (`ModelStreamError`, `InternalStreamFailure`); boto3 raises EventStreamError with
    Code = exception_type. ModelStreamError's ErrorCode is `ModelInvocationTimeExceeded` or `StreamBroken`."""
    body: dict[str, str] = {"Message": message}
    if error_code is not None:
        body["ErrorCode"] = error_code
    headers = [
        (":exception-type", exception_type),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    ]
    return encode_message(headers, json.dumps(body).encode("utf-8"))


def model_stream_error(message: str, error_code: str = "StreamBroken") -> bytes:
    return exception_event("ModelStreamError", message, error_code)
