"""HTTP request parts -> djl_python Input, and Output -> status, headers and body (pure; no web framework)."""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from modelhost.worker.handler.djl import Input, Output

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
# Headers an Output may not set: the server computes them for the body it sends.
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection"}


def _split_custom_attributes(value: str) -> list[tuple[str, str]]:
    pairs = []
    for token in value.split(";"):
        name, sep, val = token.partition("=")
        if sep and name.strip():
            pairs.append((name.strip(), val.strip()))
    return pairs


def _multipart_fields(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: list[tuple[str, bytes]] = []
    if not message.is_multipart():
        raise ValueError("malformed multipart/form-data body")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name is not None:
            fields.append((str(name), payload if isinstance(payload, bytes) else b""))
    return fields


def request_to_input(headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]], body: bytes) -> Input:
    """DJL's RequestParser: headers become properties (custom attributes split on `;`), query parameters
    become content, a form body one entry per field, any other body the entry `data`."""
    inputs = Input()
    content_type = ""
    for name, value in headers:
        if name.lower() == CUSTOM_ATTRIBUTES:
            inputs.properties.update(_split_custom_attributes(value))
            continue
        if name.lower() == "content-type":
            content_type = value
        inputs.properties[name] = value
    for name, value in query:
        inputs.content.add(name, bytearray(value.encode("utf-8")))
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            inputs.content.add(name, bytearray(value.encode("utf-8")))
    elif media_type == "multipart/form-data":
        for name, data in _multipart_fields(content_type, body):
            inputs.content.add(name, bytearray(data))
    else:
        inputs.content.add("data", bytearray(body))
    return inputs


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What the server sends for one request when the Output is not streamed."""

    status: int  # the Output's code
    headers: list[tuple[str, str]] = field(default_factory=list)  # the Output's properties
    body: bytes = b""  # the content entry `data`, else the first entry


def output_headers(output: Output) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in output.properties.items() if str(k).lower() not in _HOP_HEADERS]


def output_body(output: Output) -> bytes:
    content = output.content
    if content.is_empty():
        return b""
    value = content.get("data")
    if value is None:
        value = content.value_at(0)
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def output_to_answer(output: Output | None) -> HttpAnswer:
    """None -> 204; otherwise status = code, headers = properties, body = `data` or the first entry."""
    if output is None:
        return HttpAnswer(status=204)
    return HttpAnswer(status=int(output.code), headers=output_headers(output), body=output_body(output))


def error_output(error: str, code: int = 424) -> Output:
    """DJL's handler-failure answer: 424 with JSON {"code", "message": "invoke handler failure", "error"}."""
    return Output().error(error, code=code)


def has_stream(output: Output | None) -> bool:
    return output is not None and output.stream_content is not None


def header_pairs(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
