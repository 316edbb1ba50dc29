"""DataProcessing for batch transform: InputFilter, JoinSource and OutputFilter on one record (pure).

This module owns the `DataProcessing` shape of CreateTransformJob (validation and echo) and what it does to
each record, as "Associate Prediction Results with Input Records" documents:

1. `filter_input`: InputFilter selects the part of the input record sent to the model.
2. `join_and_filter`: JoinSource=Input joins the *original* input record (before InputFilter) with the
   model's output for it, then OutputFilter selects the part of the joined record written out.
   - JSON object input: the object plus a `SageMakerOutput` member holding the output (an existing member of
     that name is overwritten, as AWS warns); any other JSON input (an array, a scalar): a new object
     `{"SageMakerInput": input, "SageMakerOutput": output}`, as AWS documents for input that is not a
     key-value object. The output is parsed as JSON when it is JSON, else kept as a string (one trailing
     newline removed).
   - CSV input: the input's columns followed by the output's columns (`[1,2,3]` + `[1]` → `1,2,3,1`).

Choices where AWS is silent:

- A record is JSON when its content type (ContentType for input and joins, Accept for an output filtered
  alone) has "json" in its media type, CSV when it has "csv"; with any other or no content type, a record
  that parses as a JSON object or array is JSON and anything else CSV.
- JSON is parsed with the server's strict parser (`modelhost.json_guard`: at most 64 levels deep, integers
  under 30 digits, finite numbers) and written back compactly as UTF-8 (`{"a":1}`); a record outside those
  limits is refused with RecordError rather than altered. JSON must be UTF-8; CSV bytes that are not UTF-8
  pass through unchanged.
- CSV rows are read as RFC 4180 (quoted fields may hold commas) and written back with `,`, quoting only
  fields that need it.
- A filter of `$` (or an empty one) leaves the bytes exactly as they are, without parsing; so does the
  absence of both filters and join.
- A selected JSON string is written as JSON (`"text"`, with its quotes), like every selected value.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelhost import json_guard
from modelhost.batch import jsonpath
from modelhost.batch.records import RecordError

MAX_FILTER_CHARS = 63  # DataProcessing.InputFilter / OutputFilter length constraint in the API reference
JOIN_SOURCES = ("None", "Input")
OUTPUT_KEY = "SageMakerOutput"
INPUT_KEY = "SageMakerInput"
_MEMBERS = ("InputFilter", "OutputFilter", "JoinSource")
_JSON_START = re.compile(rb"[ \t\r\n]*[\[{]")

_compiled = functools.lru_cache(maxsize=128)(jsonpath.parse)


@dataclass(frozen=True, slots=True)
class DataProcessing:
    """CreateTransformJob's DataProcessing; filters are JSONPath expressions, None when not set."""

    input_filter: str | None = None
    output_filter: str | None = None
    join_source: str = "None"

    @classmethod
    def from_request(cls, shape: Mapping[str, Any] | None) -> DataProcessing:
        """Validate the request's DataProcessing; ValueError names the member ("DataProcessing.InputFilter: ...").

        An empty filter string (the API allows length 0) means the same as leaving it out: the whole record.
        """
        if shape is None:
            return cls()
        if not isinstance(shape, Mapping):
            raise ValueError("DataProcessing: must be an object with InputFilter, OutputFilter and/or JoinSource.")
        for name in shape:
            if name not in _MEMBERS:
                raise ValueError(
                    f"DataProcessing.{name}: not a member of DataProcessing; its members are InputFilter, "
                    "OutputFilter and JoinSource."
                )
        join_source = shape.get("JoinSource")
        if join_source is None:
            join_source = "None"
        if join_source not in JOIN_SOURCES:
            raise ValueError(f"DataProcessing.JoinSource: {join_source!r} is not one of None, Input.")
        return cls(_filter_member(shape, "InputFilter"), _filter_member(shape, "OutputFilter"), join_source)

    def to_request(self) -> dict[str, str]:
        """The AWS shape (PascalCase): the filters that are set, and JoinSource always."""
        shape: dict[str, str] = {}
        if self.input_filter is not None:
            shape["InputFilter"] = self.input_filter
        if self.output_filter is not None:
            shape["OutputFilter"] = self.output_filter
        shape["JoinSource"] = self.join_source
        return shape


def _filter_member(shape: Mapping[str, Any], name: str) -> str | None:
    value = shape.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"DataProcessing.{name}: must be a JSONPath string such as $ or $[1:], not {value!r}.")
    if len(value) > MAX_FILTER_CHARS:
        raise ValueError(f"DataProcessing.{name}: is {len(value)} characters; at most {MAX_FILTER_CHARS}.")
    if not value:
        return None
    try:
        _compiled(value)
    except jsonpath.JsonPathError as exc:
        raise ValueError(f"DataProcessing.{name}: {exc}") from None
    return value


def needs_per_record_outputs(processing: DataProcessing) -> bool:
    """True when each record's output must be seen alone (JoinSource=Input or an OutputFilter)."""
    return processing.join_source == "Input" or _path(processing.output_filter) is not None


def filter_input(record: bytes, processing: DataProcessing, content_type: str | None) -> bytes:
    """The part of `record` that InputFilter selects for the model (the record unchanged without one)."""
    path = _path(processing.input_filter)
    if path is None:
        return record
    parsed = _as_json(content_type, record, "The input record")
    if parsed is not None:
        return _compact(_select(path, parsed.value, "InputFilter"))
    return _csv_line(_columns(path, _csv_fields(record, "The input record"), "InputFilter"))


def join_and_filter(
    input_record: bytes, output: bytes, processing: DataProcessing, content_type: str | None, accept: str | None
) -> bytes:
    """The record written out: `output` joined with `input_record` per JoinSource, then OutputFilter applied.

    `input_record` is the record as read (before InputFilter); `content_type` is the input's ContentType and
    `accept` the output's Accept. Without a join the OutputFilter applies to the output alone.
    """
    path = _path(processing.output_filter)
    if processing.join_source != "Input":
        return output if path is None else _filter_output(output, path, accept)
    parsed = _as_json(content_type, input_record, "The input record")
    if parsed is not None:
        joined = _join_json(parsed.value, _output_value(output))
        return _compact(joined if path is None else _select(path, joined, "OutputFilter"))
    fields = _csv_fields(input_record, "The input record") + _csv_fields(output, "The model's answer")
    return _csv_line(fields if path is None else _columns(path, fields, "OutputFilter"))


def _filter_output(output: bytes, path: jsonpath.JsonPath, accept: str | None) -> bytes:
    parsed = _as_json(accept, output, "The model's answer")
    if parsed is not None:
        return _compact(_select(path, parsed.value, "OutputFilter"))
    return _csv_line(_columns(path, _csv_fields(output, "The model's answer"), "OutputFilter"))


def _path(expression: str | None) -> jsonpath.JsonPath | None:
    """The compiled filter, or None when it selects the whole record (`$`, empty or unset)."""
    if not expression:
        return None
    path = _compiled(expression)
    return None if path.is_root else path


def _join_json(input_value: Any, output_value: Any) -> dict[str, Any]:
    if isinstance(input_value, dict):
        return {**input_value, OUTPUT_KEY: output_value}
    return {INPUT_KEY: input_value, OUTPUT_KEY: output_value}


def _output_value(output: bytes) -> Any:
    """The model's answer as a JSON value: parsed when it is JSON, else its text as a string."""
    try:
        return json_guard.loads(output)
    except json_guard.UnsafeJson as exc:
        raise RecordError(f"The model's answer is JSON this server cannot hold: {exc.message}") from None
    except json_guard.NotJson:
        pass
    try:
        text = output.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError(
            "The model's answer is neither JSON nor UTF-8 text, so it cannot be joined with a JSON input record; "
            "set JoinSource to None or have the model answer with text."
        ) from None
    return text.removesuffix("\n").removesuffix("\r")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class _Json:
    value: Any


def _as_json(content_type: str | None, record: bytes, what: str) -> _Json | None:
    """The record parsed, when it is JSON by its content type (or, with no telling type, by its look); else None."""
    media = _media_type(content_type)
    if "json" in media:
        return _Json(_parse_json(record, what))
    if "csv" in media or not _JSON_START.match(record):
        return None
    try:
        return _Json(json_guard.loads(record))
    except json_guard.NotJson:
        return None  # CSV that happens to start with [ or {
    except json_guard.UnsafeJson as exc:
        raise RecordError(f"{what} is JSON this server cannot hold: {exc.message}") from None


def _parse_json(raw: bytes, what: str) -> Any:
    try:
        return json_guard.loads(raw)
    except json_guard.NotJson as exc:
        raise RecordError(
            f"{what} is not JSON ({exc}); a JSON filter or join needs one JSON value per record "
            "(JSON Lines with SplitType=Line), or set ContentType/Accept to text/csv for CSV."
        ) from None
    except json_guard.UnsafeJson as exc:
        raise RecordError(f"{what} is JSON this server cannot hold: {exc.message}") from None


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _select(path: jsonpath.JsonPath, value: Any, member: str) -> Any:
    try:
        return path.select(value)
    except jsonpath.NoMatch as exc:
        raise RecordError(f"{member} {path.expression} selects nothing in the record: {exc}") from None


def _columns(path: jsonpath.JsonPath, fields: list[str], member: str) -> list[str]:
    try:
        return path.select_columns(fields)
    except jsonpath.NoMatch as exc:
        raise RecordError(f"{member} {path.expression} selects nothing in the CSV row: {exc}") from None
    except jsonpath.JsonPathError as exc:
        raise RecordError(f"{member}: {exc} (the record is CSV)") from None


def _csv_fields(record: bytes, what: str) -> list[str]:
    """One CSV row's fields; bytes that are not UTF-8 survive as surrogate escapes (see `_csv_line`)."""
    text = record.decode("utf-8", "surrogateescape").removesuffix("\n").removesuffix("\r")
    if "\n" in text or "\r" in text:
        raise RecordError(
            f"{what} holds more than one line; a CSV join or filter needs one row per record (SplitType=Line, "
            "no newlines inside fields)."
        )
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise RecordError(f"{what} is not one CSV row ({exc}).") from None
    return rows[0] if rows else []


def _csv_line(fields: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue().encode("utf-8", "surrogateescape")
