"""The timestamp a log line starts with, as epoch milliseconds (pure, but for the host's zone rules).

Recognised at the very start of a line, followed by a space, a tab or the end of the line:

    2026-12-02 00:50:27                 endpoint.log, the launcher's lines (time.strftime)
    2026-12-02 00:50:28,052             the worker's records (logging's default asctime)
    2026-12-02T00:50:28.052123          ISO 8601, fraction of any length (only milliseconds are kept)
    2026-12-02T00:50:28.052Z            ... with a zone: Z, +HH:MM, +HHMM or +HH (also after a space)

A time without a zone is the host's local time (`local_zone=None`: the zone rules of the process, DST
included) or the given `tzinfo`. Anything else (a traceback line, a model's print) is not a timestamp.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_STAMP = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})"
    rb"(?:[.,](\d{1,9}))?"
    rb"(?: ?(Z|[+-]\d{2}(?::?\d{2})?))?"
    rb"(?=[ \t\r\n]|$)"
)
MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def _zone(text: bytes) -> tzinfo:
    if text == b"Z":
        return UTC
    sign = -1 if text[:1] == b"-" else 1
    digits = text[1:].replace(b":", b"")
    hours, minutes = int(digits[:2]), int(digits[2:4] or b"0")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def line_timestamp_ms(line: bytes, local_zone: tzinfo | None = None) -> int | None:
    """The epoch milliseconds `line` starts with, or None when it does not start with a recognised time."""
    match = _STAMP.match(line)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    millis = int((fraction or b"0").ljust(3, b"0")[:3])
    try:
        naive = datetime(year, month, day, hour, minute, second, millis * 1000)
        if zone is not None:
            moment = naive.replace(tzinfo=_zone(zone))
        elif local_zone is not None:
            moment = naive.replace(tzinfo=local_zone)
        else:
            moment = naive.astimezone()  # the host's rules for that date (DST)
        epoch_ms = round(moment.timestamp() * 1000)
    except (ValueError, OverflowError):  # 2026-13-45, or beyond what the platform's time functions take
        return None
    return epoch_ms if 0 <= epoch_ms <= MAX_EPOCH_MS else None
