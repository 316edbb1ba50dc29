"""CBOR for the rpc-v2-cbor protocol: bounded decoding with cbor2, and encoding (pure).

Decoding refuses what a Smithy client never sends and a server should not hold: nesting deeper than
`MAX_DEPTH`, more than `MAX_ITEMS` values, map keys that are not text, duplicate keys, every semantic tag but
1 (epoch timestamps; cbor2 would otherwise build regexes, sets, shared references, big decimals...), and
simple values other than true/false/null/undefined. Length prefixes larger than the body fail as truncated
input, so a small body cannot declare a huge array.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import cbor2

MAX_DEPTH = 32  # containers inside one another; the deepest CloudWatch input nests 6
MAX_ITEMS = 200_000  # values in one body: 1,000 metrics x (name, dimensions, 150 values and counts) fits


class NotCbor(ValueError):
    """The body is not CBOR this server accepts; the message says why."""


class _OnlyEpochTag(Mapping[int, Any]):
    """cbor2's semantic decoders: every tag but 1 refused (1 falls through to cbor2's datetime)."""

    def __getitem__(self, tag: int) -> Any:
        if tag == 1:
            raise KeyError(tag)

        def refuse(*_: Any) -> Any:
            raise NotCbor(f"CBOR tag {tag} is not accepted; only tag 1 (epoch-seconds timestamps) is.")

        return refuse

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_DECODERS = _OnlyEpochTag()


def _unknown_tag(_decoder: Any, tag: Any) -> Any:
    raise NotCbor(f"CBOR tag {tag.tag} is not accepted; only tag 1 (epoch-seconds timestamps) is.")


def decode(raw: bytes) -> Any:
    """The one CBOR data item in `raw`; NotCbor when it is malformed, trailed by more bytes, or refused above."""
    try:
        stream = io.BytesIO(raw)
        decoder = cbor2.CBORDecoder(
            stream,
            semantic_decoders=_DECODERS,
            tag_hook=_unknown_tag,
            max_depth=MAX_DEPTH,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
        value = decoder.decode()
    except NotCbor:
        raise
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, EOFError) as exc:
        raise NotCbor(f"The body is not valid CBOR: {exc}") from None
    if stream.tell() != len(raw):
        raise NotCbor(f"The body holds {len(raw) - stream.tell()} bytes after its CBOR data item.")
    _check(value)
    return value


def _check(value: Any) -> None:
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            raise NotCbor(f"The CBOR body holds more than {MAX_ITEMS} values.")
        if isinstance(item, dict):
            for key, member in item.items():
                if not isinstance(key, str):
                    raise NotCbor("CBOR map keys must be text strings.")
                stack.append(member)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, cbor2.CBORSimpleValue):
            raise NotCbor(f"The CBOR simple value {item.value} is not accepted.")
        elif item is cbor2.undefined:
            continue
        elif not isinstance(item, str | bytes | int | float | bool | datetime) and item is not None:
            raise NotCbor(f"A CBOR value of type {type(item).__name__} is not accepted.")


def timestamp(epoch_s: float) -> cbor2.CBORTag:
    """A timestamp as Smithy's CBOR sends it: tag 1 around epoch seconds (an integer when whole)."""
    return cbor2.CBORTag(1, int(epoch_s) if float(epoch_s).is_integer() else float(epoch_s))


def encode(value: Any) -> bytes:
    return cbor2.dumps(value)
