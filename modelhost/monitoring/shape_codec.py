"""Values ↔ botocore shapes for the three CloudWatch protocols (pure).

Requests: `from_document` turns a decoded JSON or CBOR document into parameters and `from_query` a query
string's `Name.member.N.Field=...` pairs, both walking the operation's input shape; timestamps become epoch
seconds (floats) whatever their wire form. Responses: `to_cbor` wraps timestamps in CBOR tag 1 and `to_xml`
writes the query protocol's XML. Handlers see and return plain dicts with PascalCase members and epoch floats.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import cbor2
from botocore.model import Shape

from modelhost.monitoring import cbor_codec
from modelhost.monitoring.errors import InvalidParameterValue, MalformedRequest
from modelhost.monitoring.xml_text import xml_text

MAX_QUERY_KEY_CHARS = 1024
MAX_LIST_INDEX = 100_000
MALFORMED = "MalformedQueryString"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def epoch_seconds(value: Any, path: str) -> float:
    """A wire timestamp (epoch number, ISO 8601 text, or CBOR tag 1's datetime) as finite epoch seconds."""
    seconds: float | None = None
    if isinstance(value, datetime):
        seconds = value.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text_time(value)
    if seconds is None or not math.isfinite(seconds) or abs(seconds) > 253402300799:  # year 9999
        raise InvalidParameterValue(f"The value '{str(value)[:100]}' for parameter {path} is not a valid timestamp.")
    return seconds


def _parse_text_time(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def from_document(shape: Shape, value: Any, path: str = "") -> Any:
    """A JSON/CBOR request value with its timestamps as epoch seconds (other types are left for validation)."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {
            name: from_document(members[name], item, _join(path, name)) if name in members else item
            for name, item in value.items()
        }
    if kind == "list" and isinstance(value, list):
        member = shape.member
        return [from_document(member, item, f"{path}.member.{i}") for i, item in enumerate(value, start=1)]
    if kind == "map" and isinstance(value, dict):
        return {key: from_document(shape.value, item, f"{path}.{key}") for key, item in value.items()}
    if kind == "timestamp" and value is not None:
        return epoch_seconds(value, path)
    if value is cbor2.undefined:
        return None
    return value


# ---- query protocol: Name.member.N.Field=value pairs -------------------------------------------------


def query_tree(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The dotted keys of a query string as nested dicts; MalformedQueryString on clashing or oversized keys."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        if len(key) > MAX_QUERY_KEY_CHARS or not key:
            raise MalformedRequest(f"The query parameter name '{key[:100]}' is not valid.", code=MALFORMED)
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise MalformedRequest(f"The query parameter {key[:100]} clashes with another.", code=MALFORMED)
            node = child
        if leaf in node:
            raise MalformedRequest(f"The query parameter {key[:100]} is given more than once.", code=MALFORMED)
        node[leaf] = value
    return root


def from_query(shape: Shape, node: Any, path: str = "") -> Any:
    """A query tree (from `query_tree`) as parameters, converting text to each leaf shape's type."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(node, dict):
            raise InvalidParameterValue(f"The parameter {path} must be a structure (send {path}.<Member>=...).")
        members = shape.members
        return {name: from_query(members[name], node[name], _join(path, name)) for name in members if name in node}
    if kind == "list":
        return [from_query(shape.member, item, f"{path}.member.{i}") for i, item in _indexed(node, "member", path)]
    if kind == "map":
        entries = {}
        for i, entry in _indexed(node, "entry", path):
            if not isinstance(entry, dict) or "key" not in entry or "value" not in entry:
                raise InvalidParameterValue(f"The parameter {path}.entry.{i} needs a key and a value.")
            key = from_query(shape.key, entry["key"], f"{path}.entry.{i}.key")
            entries[key] = from_query(shape.value, entry["value"], f"{path}.entry.{i}.value")
        return entries
    if not isinstance(node, str):
        raise InvalidParameterValue(f"The parameter {path} must be a single value, not a structure.")
    return _leaf(kind, node, path)


def _indexed(node: Any, word: str, path: str) -> list[tuple[int, Any]]:
    if node == "":
        return []  # how the query protocol sends an empty list
    items = node.get(word) if isinstance(node, dict) else None
    if not isinstance(items, dict):
        raise InvalidParameterValue(f"The parameter {path} must be a list (send {path}.{word}.1=...).")
    indexed = []
    for index, item in items.items():
        if not index.isdigit() or not 1 <= int(index) <= MAX_LIST_INDEX:
            raise InvalidParameterValue(f"The list index in {path}.{word}.{index[:20]} must be 1 to {MAX_LIST_INDEX}.")
        indexed.append((int(index), item))
    return sorted(indexed, key=lambda pair: pair[0])


def _leaf(kind: str, text: str, path: str) -> Any:
    if kind in ("integer", "long"):
        stripped = text.strip()
        if not stripped.lstrip("-").isdigit() or len(stripped) > 20:
            raise InvalidParameterValue(f"The value '{text[:100]}' for parameter {path} is not a valid integer.")
        return int(stripped)
    if kind in ("double", "float"):
        try:
            return float(text)
        except ValueError:
            raise InvalidParameterValue(f"The value '{text[:100]}' for parameter {path} is not a number.") from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise InvalidParameterValue(f"The value '{text[:100]}' for parameter {path} must be true or false.")
        return text.lower() == "true"
    if kind == "timestamp":
        return epoch_seconds(text, path)
    return text


# ---- responses ----------------------------------------------------------------------------------------


def to_cbor(shape: Shape, value: Any) -> Any:
    """A response value ready for cbor2: timestamps as tag 1, doubles as floats."""
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        return {name: to_cbor(members[name], item) for name, item in value.items() if item is not None}
    if kind == "list":
        return [to_cbor(shape.member, item) for item in value]
    if kind == "map":
        return {key: to_cbor(shape.value, item) for key, item in value.items()}
    if kind == "timestamp":
        return cbor_codec.timestamp(value)
    if kind in ("double", "float"):
        return float(value)
    return value


def iso8601(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond // 1000:03d}Z" if moment.microsecond else "Z")


def to_xml(shape: Shape, value: Any, name: str) -> str:
    """One member as the query protocol's XML element `<name>...</name>`."""
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        inner = "".join(to_xml(members[key], item, key) for key, item in value.items() if item is not None)
    elif kind == "list":
        inner = "".join(to_xml(shape.member, item, "member") for item in value)
    elif kind == "map":
        inner = "".join(
            f"<entry>{to_xml(shape.key, key, 'key')}{to_xml(shape.value, item, 'value')}</entry>"
            for key, item in value.items()
        )
    elif kind == "timestamp":
        inner = iso8601(value)
    elif kind == "boolean":
        inner = "true" if value else "false"
    elif kind in ("double", "float"):
        inner = repr(float(value))
    else:
        inner = xml_text(str(value))
    return f"<{name}>{inner}</{name}>"
