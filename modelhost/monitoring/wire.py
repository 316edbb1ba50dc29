"""The three wire protocols botocore knows for CloudWatch: which one a request speaks, its operation and
parameters, and the response or error in the same protocol (pure; bodies are already read).

    smithy-rpc-v2-cbor  POST /service/GraniteServiceVersion20100801/operation/<Op>, `smithy-protocol: rpc-v2-cbor`,
                        CBOR bodies both ways, errors `{"__type", "message"}` in CBOR
    awsJson1_0          POST / with `X-Amz-Target: GraniteServiceVersion20100801.<Op>`, JSON both ways
    query               POST / form-encoded `Action=<Op>&Version=2010-08-01&...`, XML responses and ErrorResponse

CloudWatch is "awsQueryCompatible": JSON and CBOR errors carry `x-amzn-query-error: <Code>;Sender`, from which
botocore takes the same error code the query protocol sends (InvalidParameterValue, MissingParameter, ...).
PutMetricData bodies may arrive gzip-compressed (botocore compresses those over 10 KiB).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import parse_qsl

from botocore.model import OperationModel, ServiceModel
from starlette.responses import Response

from modelhost import json_guard
from modelhost.api.validation import service_model
from modelhost.errors import ApiError
from modelhost.monitoring import cbor_codec, shape_codec
from modelhost.monitoring.errors import MalformedRequest, MissingParameter, RequestTooLarge, UnknownCloudWatchOperation
from modelhost.monitoring.xml_text import xml_text

Kind = Literal["cbor", "json", "query"]

SERVICE = "cloudwatch"
TARGET_PREFIX = "GraniteServiceVersion20100801"
CBOR_PATH_PREFIX = f"/service/{TARGET_PREFIX}/operation/"
API_VERSION = "2010-08-01"
XML_NAMESPACE = "http://monitoring.amazonaws.com/doc/2010-08-01/"
# PutMetricData requests are limited to 1 MB by CloudWatch; a gzip body may expand up to this much.
MAX_BODY_BYTES = 1024 * 1024
MAX_DECODED_BYTES = 8 * 1024 * 1024
MAX_QUERY_FIELDS = 100_000
SERIALIZATION = "SerializationException"
PREFIX_BYTES = 2048  # what cloudwatch_request_kind needs of a body to recognise the query protocol


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


@lru_cache(maxsize=1)
def operation_names() -> frozenset[str]:
    return frozenset(service_model(SERVICE).operation_names)


def cloudwatch_request_kind(method: str, path: str, headers: Mapping[str, str], body_prefix: bytes) -> Kind | None:
    """Which CloudWatch protocol a request speaks, or None when it is not a CloudWatch request.

    `body_prefix` (the first `PREFIX_BYTES` of the body, or all of it) is read only for form-encoded
    requests at `/`, whose `Version=2010-08-01` (or, without Version, an Action CloudWatch has) marks them.
    """
    if method.upper() != "POST":
        return None
    if path.startswith(CBOR_PATH_PREFIX):
        return "cbor"
    if path != "/":
        return None
    target = _header(headers, "x-amz-target")
    if target is not None:
        return "json" if target.startswith(TARGET_PREFIX + ".") else None
    media_type = (_header(headers, "content-type") or "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return None
    text = _plain_prefix(body_prefix[:PREFIX_BYTES], _header(headers, "content-encoding"))
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if "Version" in fields:
        return "query" if fields["Version"] == API_VERSION else None
    return "query" if fields.get("Action") in operation_names() else None


def _plain_prefix(prefix: bytes, encoding: str | None) -> str:
    if encoding and encoding.strip().lower() == "gzip":
        try:
            prefix = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(prefix, PREFIX_BYTES)
        except zlib.error:
            return ""
    return prefix.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class CallHead:
    """A request's protocol and operation, known before its parameters are decoded (auth runs here)."""

    kind: Kind
    operation: str  # e.g. "GetMetricData"
    body: bytes  # the body after Content-Encoding (what the parameters are decoded from)
    query_fields: tuple[tuple[str, str], ...] = ()  # query protocol: every field but Action and Version

    @property
    def action(self) -> str:
        """The IAM action, as identity policies name it."""
        return f"cloudwatch:{self.operation}"


def decoded_body(raw: bytes, encoding: str | None) -> bytes:
    """The body after its Content-Encoding (identity or gzip), never more than MAX_DECODED_BYTES."""
    if not encoding or encoding.strip().lower() == "identity":
        return raw
    if encoding.strip().lower() != "gzip":
        raise MalformedRequest(
            f"Content-Encoding '{encoding[:50]}' is not supported; send gzip or no encoding.",
            code="UnsupportedContentEncoding",
            status=415,
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(raw, MAX_DECODED_BYTES + 1)
    except zlib.error as exc:
        raise MalformedRequest(f"The gzip body cannot be decompressed: {exc}", code="MalformedInput") from None
    if len(plain) > MAX_DECODED_BYTES or inflater.unconsumed_tail:
        raise RequestTooLarge(f"The decompressed request body is over the {MAX_DECODED_BYTES}-byte limit.")
    if not inflater.eof:
        raise MalformedRequest("The gzip body is truncated.", code="MalformedInput")
    return plain


def parse_head(kind: Kind, path: str, headers: Mapping[str, str], raw: bytes) -> CallHead:
    """The operation a request calls (UnknownOperation-style errors for what CloudWatch has not)."""
    body = decoded_body(raw, _header(headers, "content-encoding"))
    if kind == "cbor":
        if (_header(headers, "smithy-protocol") or "").strip() != "rpc-v2-cbor":
            raise MalformedRequest(
                "An rpc-v2-cbor request needs the header 'smithy-protocol: rpc-v2-cbor'.", code=SERIALIZATION
            )
        return CallHead(kind, _known(path[len(CBOR_PATH_PREFIX) :], kind), body)
    if kind == "json":
        target = _header(headers, "x-amz-target") or ""
        return CallHead(kind, _known(target.partition(".")[2], kind), body)
    fields = _query_fields(body)
    action = [value for key, value in fields if key == "Action"]
    version = [value for key, value in fields if key == "Version"]
    if not action:
        raise MissingParameter("The request must contain the parameter Action.")
    if version and version[0] != API_VERSION:
        raise UnknownCloudWatchOperation(f"Could not find operation {action[0][:100]} for version {version[0][:30]}.")
    rest = tuple((key, value) for key, value in fields if key not in ("Action", "Version"))
    return CallHead(kind, _known(action[0], kind), body, rest)


def _known(operation: str, kind: Kind) -> str:
    if operation in operation_names() and "/" not in operation:
        return operation
    shown = operation[:100]
    if kind == "query":
        raise UnknownCloudWatchOperation(f"The action {shown} is not valid for this web service.")
    raise UnknownCloudWatchOperation(
        f"CloudWatch has no operation '{shown}'.", code="UnknownOperationException", status=400
    )


def _query_fields(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(f"The query string is malformed: {exc}", code="MalformedQueryString") from None


def decode_params(head: CallHead, operation: OperationModel) -> dict[str, Any]:
    """The request's parameters as a dict of PascalCase members, timestamps as epoch seconds."""
    shape = operation.input_shape
    if head.kind == "query":
        return dict(shape_codec.from_query(shape, shape_codec.query_tree(list(head.query_fields))))
    if not head.body.strip():
        return {}
    if head.kind == "cbor":
        try:
            document = cbor_codec.decode(head.body)
        except cbor_codec.NotCbor as exc:
            raise MalformedRequest(str(exc), code=SERIALIZATION) from None
    else:
        try:
            document = json_guard.loads(head.body, max_depth=32)
        except json_guard.NotJson as exc:
            raise MalformedRequest(f"The body is not valid JSON: {exc}", code=SERIALIZATION) from None
        except json_guard.UnsafeJson as exc:
            raise MalformedRequest(exc.message, code=SERIALIZATION) from None
    if not isinstance(document, dict):
        raise MalformedRequest("The request body must be a map of the operation's members.", code=SERIALIZATION)
    return dict(shape_codec.from_document(shape, document))


# ---- responses -------------------------------------------------------------------------------------------


def success(kind: Kind, operation: OperationModel, result: dict[str, Any], request_id: str) -> Response:
    shape = operation.output_shape
    headers = {"x-amzn-RequestId": request_id}
    if kind == "cbor":
        body = cbor_codec.encode(shape_codec.to_cbor(shape, result) if shape is not None else {})
        return Response(body, media_type="application/cbor", headers={**headers, "smithy-protocol": "rpc-v2-cbor"})
    if kind == "json":
        return Response(json.dumps(result), media_type="application/x-amz-json-1.0", headers=headers)
    name = operation.name
    inner = ""
    if shape is not None:
        inner = shape_codec.to_xml(shape, result, f"{name}Result")
    xml = (
        f'<{name}Response xmlns="{XML_NAMESPACE}">{inner}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{name}Response>"
    )
    return Response(xml, media_type="text/xml", headers=headers)


@lru_cache(maxsize=1)
def _error_shapes() -> dict[str, str]:
    """Query error code -> modeled error shape name (InvalidParameterValue -> InvalidParameterValueException)."""
    model: ServiceModel = service_model(SERVICE)
    return {shape.error_code: shape.name for shape in model.error_shapes}


def failure(kind: Kind, error: ApiError, request_id: str) -> Response:
    """The error in the request's protocol, with the code botocore turns into ClientError's Code."""
    fault = "Sender" if error.status < 500 else "Receiver"
    headers = {"x-amzn-RequestId": request_id}
    if kind == "query":
        xml = (
            f'<ErrorResponse xmlns="{XML_NAMESPACE}"><Error><Type>{fault}</Type><Code>{xml_text(error.code)}</Code>'
            f"<Message>{xml_text(error.message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Response(xml, status_code=error.status, media_type="text/xml", headers=headers)
    shape_name = _error_shapes().get(error.code, error.code)
    body = {"__type": f"com.amazonaws.cloudwatch#{shape_name}", "message": error.message}
    headers["x-amzn-query-error"] = f"{error.code};{fault}"
    if kind == "cbor":
        headers["smithy-protocol"] = "rpc-v2-cbor"
        return Response(cbor_codec.encode(body), error.status, headers, media_type="application/cbor")
    return Response(json.dumps(body), error.status, headers, media_type="application/x-amz-json-1.0")
