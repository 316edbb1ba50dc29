"""Value trees from botocore input shapes, written in each wire protocol the fuzzed APIs speak, and the checks
on the answers (for test_fuzz_monitoring.py).

A generated value is a tree of dicts, lists and scalars, with three markers: `Raw` (JSON text written verbatim,
from test_fuzz_api.py), `Stamp` (a timestamp member's value) and `Blob` (a blob member's bytes). `json_text`,
`cbor_bytes` and `query_pairs` write one tree in AWS JSON, smithy-rpc-v2-cbor and the query protocol, each the
way a client of that protocol would (timestamps as numbers, tag 1 or ISO 8601; blobs as base64 or byte
strings), keeping what the tree holds that the protocol can carry only badly (lone surrogates written as their
raw UTF-8 bytes, numbers no double holds, 1,200-deep nesting).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import cbor2
import httpx
from botocore.model import ListShape, MapShape, Shape, StructureShape

from tests.integration.fuzz.test_fuzz_api import RAW_TOKENS, Raw


@dataclass(frozen=True)
class Stamp:
    """A timestamp member's value, in epoch seconds."""

    epoch_s: float


@dataclass(frozen=True)
class Blob:
    data: bytes


def _surrogate_utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# ---- AWS JSON ------------------------------------------------------------------------------------------------


def json_text(value: Any, ascii_only: bool) -> bytes:
    """JSON with `Raw` tokens verbatim and lone surrogates as they are (escaped, or raw bytes when not ASCII)."""
    return _json(value, ascii_only).encode("utf-8", "surrogatepass")


def _json(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Stamp):
        return json.dumps(value.epoch_s)
    if isinstance(value, Blob):
        return json.dumps(base64.b64encode(value.data).decode())
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k), ensure_ascii=ascii_only)}:{_json(v, ascii_only)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


# ---- smithy-rpc-v2-cbor --------------------------------------------------------------------------------------


def _head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if length < 256 ** struct.calcsize(fmt):
            return bytes([major << 5 | extra]) + struct.pack(fmt, length)
    raise ValueError(length)


_CBOR_RAW: dict[str, bytes] = {
    RAW_TOKENS[0]: cbor2.dumps(math.inf),  # 1e400
    RAW_TOKENS[1]: cbor2.dumps(-math.inf),
    RAW_TOKENS[2]: b"\xf9\x7e\x00",  # NaN as a half float
    RAW_TOKENS[3]: b"\xfa\x7f\x80\x00\x00",  # Infinity as a single float
    RAW_TOKENS[4]: cbor2.dumps(-math.inf),
    RAW_TOKENS[5]: cbor2.dumps(int(RAW_TOKENS[5])),  # a bignum (tag 2)
    RAW_TOKENS[6]: cbor2.dumps(-0.0),
    RAW_TOKENS[7]: cbor2.dumps(1e-28),
    RAW_TOKENS[8]: cbor2.dumps(2**63),
    RAW_TOKENS[9]: b"\x81" * 1200 + b"\x80",  # arrays 1,200 deep
    RAW_TOKENS[10]: b"\xa1\x61a" * 600 + b"\x01",  # maps 600 deep
}


def cbor_bytes(value: Any) -> bytes:
    """CBOR with text strings written as their (surrogate-passing) UTF-8 bytes, timestamps as tag 1."""
    if isinstance(value, Raw):
        return _CBOR_RAW.get(str(value)) or _head(3, len(str(value))) + _surrogate_utf8(str(value))
    if isinstance(value, Stamp):
        return cbor2.dumps(cbor2.CBORTag(1, value.epoch_s))
    if isinstance(value, Blob):
        return cbor2.dumps(value.data)
    if isinstance(value, str):
        data = _surrogate_utf8(value)
        return _head(3, len(data)) + data
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor_bytes(str(k)) + cbor_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(cbor_bytes(v) for v in value)
    return cbor2.dumps(value)


def indefinite(body: bytes) -> bytes:
    """A small definite-length map or array rewritten with an indefinite length (what streaming encoders send)."""
    if body and body[0] >> 5 in (4, 5) and body[0] & 0x1F < 24:
        return bytes([body[0] | 0x1F]) + body[1:] + b"\xff"
    return body


MALFORMED_CBOR = [
    b"\xff",  # a lone break
    b"\xa1",  # a map with its one pair missing
    b"\xbf",  # an indefinite map never ended
    b"\x9f" * 100,
    b"\xa1\x01\x02",  # an integer map key
    b"\xa2\x61a\x01\x61a\x02",  # a duplicate key
    b"\xa0\x00",  # bytes after the data item
    b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # an array declaring 2**64 - 1 items
    b"\x5b\x00\x00\x00\x10\x00\x00\x00\x00",  # a byte string declaring 64 GiB
    b"\x7a\x7f\xff\xff\xff" + b"a" * 10,  # a text string declaring 2 GiB
    b"\x81" * 5000 + b"\xa0",  # arrays 5,000 deep
    b"\xa1\x63Foo\x62\xff\xfe",  # a text string that is not UTF-8
    b"\xa1\x63Foo\xf0",  # simple value 16
    b"\xa1\x63Foo\xf8\xff",  # simple value 255
    b"\xf7",  # undefined
    b"\xf6",  # null
    b"\x80",  # an array, not a map
    b"\x63abc",  # a string, not a map
    b"\xd9\x01\x02\x81\x01",  # tag 258 (a set)
    b"\xd8\x1c\x81\xd8\x1d\x00",  # tags 28/29 (shared references)
    b"\xc4\x82\x21\x19\x6a\xb3",  # tag 4 (a decimal fraction)
    b"\xd8\x23\x63a.*",  # tag 35 (a regular expression)
    b"\xc1\x63now",  # tag 1 around a string
    b"\xc1\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00",  # tag 1 around infinity
    b"\xc0\x74" + b"2026-01-01T00:00:00Z",  # tag 0 (a date string)
    b"\xa1\x7f\x61a\x61b\xff\x01",  # an indefinite text key
    b"\xa1\x5f\x41a\xff\x01",  # an indefinite byte-string key
    b"\x1c",  # reserved additional information
    b"\xa1\x61a\x1f",
    b"{}",  # JSON at the CBOR path
]


# ---- the query protocol ---------------------------------------------------------------------------------------


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, Stamp):
        try:
            return datetime.fromtimestamp(value.epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except (OverflowError, OSError, ValueError):
            return repr(value.epoch_s)
    if isinstance(value, Blob):
        return base64.b64encode(value.data).decode()
    return str(value)


def query_pairs(value: Any, shape: Shape | None, prefix: str = "") -> list[tuple[str, str]]:
    """The tree as the query protocol's dotted fields: `A.B`, lists `A.member.N`, maps `A.entry.N.key/value`;
    a value of the wrong kind is written by its own kind (a list where a string belongs gets `.member.N`)."""
    if isinstance(value, dict) and not isinstance(shape, MapShape):
        members = shape.members if isinstance(shape, StructureShape) else {}
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            pairs += query_pairs(item, members.get(key), name)
        return pairs
    if isinstance(value, dict):
        assert isinstance(shape, MapShape)
        pairs = []
        for i, (key, item) in enumerate(value.items(), start=1):
            pairs.append((f"{prefix}.entry.{i}.key", str(key)))
            pairs += query_pairs(item, shape.value, f"{prefix}.entry.{i}.value")
        return pairs
    if isinstance(value, list):
        member = shape.member if isinstance(shape, ListShape) else None
        pairs = []
        for i, item in enumerate(value, start=1):
            pairs += query_pairs(item, member, f"{prefix}.member.{i}")
        return pairs or [(prefix, "")]
    return [(prefix or "Value", _scalar_text(value))]


def form(pairs: list[tuple[str, str]]) -> bytes:
    """Form encoding that keeps lone surrogates (as their raw UTF-8 bytes, percent-encoded)."""
    return "&".join(
        f"{quote(_surrogate_utf8(k), safe='')}={quote(_surrogate_utf8(v), safe='')}" for k, v in pairs
    ).encode()


# ---- the answers ----------------------------------------------------------------------------------------------

XML_NS = "{http://monitoring.amazonaws.com/doc/2010-08-01/}"


def shape_problem(expect: str, operation: str, answer: httpx.Response) -> str | None:
    """Why the answer is not in the protocol's shape (None when it is): `expect` is "json", "cbor", "query"
    (an XML ErrorResponse, or `<Op>Response` on success) or "query|json" (a query body CloudWatch may not
    recognise as one: then the JSON 404 "not a CloudWatch request")."""
    if expect == "query|json":
        expect = "query" if answer.headers.get("content-type", "").startswith("text/xml") else "json"
    failed = answer.status_code >= 400
    try:
        if expect == "query":
            root = ElementTree.fromstring(answer.content)
            if not failed:
                return None if root.tag == f"{XML_NS}{operation}Response" else f"an XML answer rooted at {root.tag}"
            code = root.findtext(f"{XML_NS}Error/{XML_NS}Code")
            message = root.findtext(f"{XML_NS}Error/{XML_NS}Message")
            if root.tag != f"{XML_NS}ErrorResponse" or not code or message is None:
                return "an XML error that is not <ErrorResponse><Error><Code/><Message/>"
            return None
        if expect == "cbor":
            if answer.headers.get("smithy-protocol") != "rpc-v2-cbor":
                return "a CBOR answer without 'smithy-protocol: rpc-v2-cbor'"
            document = cbor2.loads(answer.content)
        else:
            document = json.loads(answer.content)
    except (ValueError, ElementTree.ParseError, cbor2.CBORDecodeError) as exc:
        return f"a body that is not {expect}: {exc}"
    if not isinstance(document, dict):
        return f"a {expect} body that is not a map"
    if not failed:
        return None
    message = document.get("message", document.get("Message"))
    if not isinstance(document.get("__type"), str) or not document["__type"] or not isinstance(message, str):
        return f"a {expect} error without __type and message"
    return None
