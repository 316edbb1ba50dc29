"""The event-stream encoder, checked against botocore's own decoder and sagemaker-runtime's output shape."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser

from modelhost.router import eventstream


def decode(data: bytes, split: int = 7) -> list[Any]:
    """Feed in odd-sized pieces: messages split across and joined within chunks, as HTTP delivers them."""
    buffer = EventStreamBuffer()
    messages = []
    for i in range(0, len(data), split):
        buffer.add_data(data[i : i + split])
        messages.extend(buffer)
    return messages


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> Any:
        yield self.data


def boto_events(data: bytes) -> EventStream:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    output = model.operation_model("InvokeEndpointWithResponseStream").output_shape.members["Body"]
    return EventStream(_Raw(data), output, EventStreamJSONParser(), "InvokeEndpointWithResponseStream")


def test_payload_part_matches_the_captured_bytes() -> None:
    expected = bytes.fromhex(
        "0000007100000059b327ff460b3a6576656e742d7479706507000b5061796c6f6164506172740d3a636f6e74656e742d74"
        "7970650700186170706c69636174696f6e2f6f637465742d73747265616d0d3a6d6573736167652d74797065070005"
        "6576656e747b2261223a317d0a29969631"
    )
    assert eventstream.payload_part(b'{"a":1}\n') == expected


def test_payload_parts_round_trip_through_botocore() -> None:
    chunks = [b'{"token": {"text": "Deep"}}\n', b"", "caf\u00e9 \u2615".encode(), bytes(range(256)) * 40]
    data = b"".join(eventstream.payload_part(c) for c in chunks)
    messages = decode(data)
    assert [m.payload for m in messages] == chunks
    for message in messages:
        assert message.headers[":message-type"] == "event"
        assert message.headers[":event-type"] == "PayloadPart"
    events = list(boto_events(data))
    assert [e["PayloadPart"]["Bytes"] for e in events] == chunks


def test_model_stream_error_raises_event_stream_error() -> None:
    data = eventstream.payload_part(b"first") + eventstream.model_stream_error("worker died", "StreamBroken")
    message = decode(data)[1]
    assert message.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(message.payload) == {"Message": "worker died", "ErrorCode": "StreamBroken"}
    events = iter(boto_events(data))
    assert next(events) == {"PayloadPart": {"Bytes": b"first"}}
    with pytest.raises(EventStreamError) as caught:
        next(events)
    assert caught.value.response["Error"]["Code"] == "ModelStreamError"
    assert caught.value.response["Error"]["Message"] == "worker died"


def test_large_payload_is_split_below_the_decoder_limit() -> None:
    big = b"x" * (eventstream.MAX_PAYLOAD_BYTES + 10)
    messages = decode(eventstream.payload_part(big), split=1 << 20)
    assert len(messages) == 2 and b"".join(m.payload for m in messages) == big


def test_a_corrupted_message_fails_its_checksum() -> None:
    data = bytearray(eventstream.payload_part(b"hello"))
    data[-6] ^= 0xFF
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        decode(bytes(data))
