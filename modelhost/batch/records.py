"""One input object's bytes to model requests and the answers back to one output object (pure).

This module owns the record arithmetic of a batch transform: `CompressionType` (`decompress`), `SplitType`
(`split`), `BatchStrategy` with `MaxPayloadInMB` (`pack`), cutting a mini-batch's answer back into one
output per record (`split_response`) and `AssembleWith` (`assemble`). Record indexes are 0-based and count
records within one object (blank lines skipped by `split` are not records, so they are not counted);
messages number them from 1, as a person counts.

Choices where AWS is silent:

- An empty object yields no records, so no request is sent and its output object is empty.
- `SplitType=Line` splits on `\\n`, removes one `\\r` before it (CRLF files) and skips lines that are empty or
  only ASCII whitespace (a trailing newline, blank lines between records); other bytes are kept as they are.
- `SplitType=None` sends each object whole, alone, whatever the `BatchStrategy` (SageMaker never combines
  objects into one request).
- `MultiRecord` joins records with `\\n` (no trailing newline) and puts as many consecutive records in one
  request as keep its body within `MaxPayloadInMB`; a record exactly at the limit fits.
- Gzip input may be several gzip members one after another (what `cat a.gz b.gz` gives, and what `gzip -d`
  accepts); NUL padding after the last member is ignored.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from modelhost import json_guard

_MIB = 1024 * 1024
_GZIP_WBITS = 31  # zlib: gzip header and trailer, no zlib/raw fallback
_INFLATE_STEP = 1024 * 1024  # compressed bytes handed to zlib at a time
_JSON_START = re.compile(rb"[ \t\r\n]*[\[{]")


class RecordError(Exception):
    """A record (or the whole object, `index` None) cannot be processed; the message says what to fix."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index

    def at(self, index: int) -> RecordError:
        """The same error, placed at record `index` (for callers of the per-record filters)."""
        return RecordError(self.message, index)


@dataclass(frozen=True, slots=True)
class Payload:
    """One request to the model: `body` carries records[first:first + count]."""

    first: int
    count: int
    body: bytes


def decompress(data: bytes, compression: str, max_bytes: int) -> bytes:
    """`data` as the model should see it: "None" returns it unchanged; "Gzip" inflates it.

    Gzip output is produced incrementally and refused with RecordError once it passes `max_bytes`, so a
    gzip bomb costs at most `max_bytes` of memory. Data that is not gzip, or ends mid-stream, is refused.
    """
    if compression == "None":
        return data
    if compression != "Gzip":
        raise ValueError(f"CompressionType {compression!r} is not None or Gzip")
    if not data:
        return b""  # an empty object is no records, compressed or not
    out = bytearray()
    pos = 0
    while pos < len(data):
        if data[pos] == 0 and not data[pos:].strip(b"\0"):
            break
        pos = _inflate_member(data, pos, out, max_bytes)
    return bytes(out)


def _not_gzip(why: str) -> str:
    return f"The object {why}, so it is not gzip data; set CompressionType to None for uncompressed input."


def _inflate_member(data: bytes, pos: int, out: bytearray, max_bytes: int) -> int:
    """Inflate the gzip member at data[pos:] into `out`; return the position after it."""
    inflater = zlib.decompressobj(_GZIP_WBITS)
    pending = b""
    while not inflater.eof:
        if not pending:
            if pos >= len(data):
                raise RecordError(_not_gzip("ends before its gzip stream does (truncated?)"))
            pending = data[pos : pos + _INFLATE_STEP]
            pos += len(pending)
        try:
            out += inflater.decompress(pending, max_bytes - len(out) + 1)
        except zlib.error as exc:
            raise RecordError(_not_gzip(f"does not decompress ({exc})")) from None
        if len(out) > max_bytes:
            raise RecordError(
                f"The object decompresses to more than {max_bytes} bytes, more than this server accepts for one "
                "object; split the input into smaller objects."
            )
        pending = inflater.unconsumed_tail
    return pos - len(inflater.unused_data) - len(pending)


def split(data: bytes, split_type: str) -> list[bytes]:
    """The records of one (decompressed) object. "None": the object whole; "Line": its non-blank lines."""
    if split_type == "None":
        return [data] if data else []
    if split_type != "Line":
        raise ValueError(f"SplitType {split_type!r} is not supported here; use None or Line")
    return _lines(data)


def _lines(data: bytes) -> list[bytes]:
    lines = []
    for line in data.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            lines.append(line)
    return lines


def pack(
    records: Sequence[bytes], start: int, strategy: str, max_payload_bytes: int, split_type: str
) -> Iterator[Payload]:
    """The requests for records[start:], in order, as `BatchStrategy` and `MaxPayloadInMB` make them.

    `max_payload_bytes` 0 means no limit (MaxPayloadInMB=0). A record larger than the limit raises
    RecordError with its index when the packing reaches it (the payloads before it are yielded first).
    """
    if start < 0:
        raise ValueError(f"start must be 0 or more, not {start}")
    if strategy not in ("SingleRecord", "MultiRecord"):
        raise ValueError(f"BatchStrategy {strategy!r} is not SingleRecord or MultiRecord")
    if strategy == "SingleRecord" or split_type != "Line":
        return _single(records, start, max_payload_bytes)
    return _multi(records, start, max_payload_bytes)


def _check_size(record: bytes, index: int, max_payload_bytes: int) -> None:
    if max_payload_bytes and len(record) > max_payload_bytes:
        raise RecordError(
            f"Record {index + 1} is {len(record)} bytes, more than MaxPayloadInMB={max_payload_bytes / _MIB:g} "
            f"({max_payload_bytes} bytes) allows; raise MaxPayloadInMB (up to 100) or split the input into "
            "smaller records.",
            index,
        )


def _single(records: Sequence[bytes], start: int, max_payload_bytes: int) -> Iterator[Payload]:
    for index in range(start, len(records)):
        _check_size(records[index], index, max_payload_bytes)
        yield Payload(index, 1, records[index])


def _multi(records: Sequence[bytes], start: int, max_payload_bytes: int) -> Iterator[Payload]:
    first = start
    size = 0  # bytes of records[first:index] joined with b"\n"
    for index in range(start, len(records)):
        record = records[index]
        grown = size + len(record) + (1 if index > first else 0)
        if max_payload_bytes and grown > max_payload_bytes and index > first:
            yield Payload(first, index - first, b"\n".join(records[first:index]))
            first, grown = index, len(record)
        _check_size(record, index, max_payload_bytes)
        size = grown
    if first < len(records):
        yield Payload(first, len(records) - first, b"\n".join(records[first:]))


def split_response(body: bytes, count: int, index_of_first: int) -> list[bytes]:
    """The model's answer to a `count`-record request, cut into one output per record.

    Attempts, in order: `count` 1 → the body whole. A body that is one JSON value (it starts with `[` or
    `{` and parses whole) must be an array of `count` elements, each re-serialised compactly (a JSON Lines
    body never parses whole, so it is not taken for an array). Anything else is cut into lines as
    `split(..., "Line")` does (CRLF, blank lines skipped), which must number `count`. Otherwise RecordError
    names the records and both counts.
    """
    if count < 1:
        raise ValueError(f"count must be 1 or more, not {count}")
    if count == 1:
        return [body]
    last = index_of_first + count - 1
    shown = f"{index_of_first + 1}-{last + 1}"  # records are numbered from 1 in messages
    value = _whole_json(body, index_of_first, last)
    if value is not None:
        if not isinstance(value, list) or len(value) != count:
            got = f"an array of {len(value)} elements" if isinstance(value, list) else "one JSON object"
            raise RecordError(
                f"The model answered records {shown} ({count} records) with {got}; it must answer "
                f"one line per record or a JSON array of {count} elements. Use BatchStrategy=SingleRecord if it "
                "cannot.",
                index_of_first,
            )
        return [_compact(element) for element in value]
    lines = _lines(body)
    if len(lines) != count:
        raise RecordError(
            f"The model answered records {shown} ({count} records) with {len(lines)} non-blank "
            f"lines; it must answer one line per record or a JSON array of {count} elements. Use "
            "BatchStrategy=SingleRecord if it cannot.",
            index_of_first,
        )
    return lines


def _whole_json(body: bytes, first: int, last: int) -> Any:
    """The body parsed as one JSON array or object, or None when it is not one JSON value."""
    if not _JSON_START.match(body):
        return None
    try:  # the plain parser first: a JSON Lines body fails on its second line before any limit is checked
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    try:
        json_guard.check(value)
    except json_guard.UnsafeJson as exc:
        raise RecordError(
            f"The model's answer to records {first + 1}-{last + 1} is JSON this server cannot hold: {exc.message}",
            first,
        ) from None
    return value


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def assemble(outputs: Sequence[bytes], assemble_with: str) -> bytes:
    """One output object: "Line" ends every output with one `\\n`; "None" concatenates them as they are."""
    if assemble_with == "None":
        return b"".join(outputs)
    if assemble_with != "Line":
        raise ValueError(f"AssembleWith {assemble_with!r} is not None or Line")
    return b"".join(output if output.endswith(b"\n") else output + b"\n" for output in outputs)
