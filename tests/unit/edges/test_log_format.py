"""Log records cannot forge log lines: control characters are escaped, tracebacks indented."""

from __future__ import annotations

import logging

from modelhost.cli.log_format import LOG_FORMAT, SafeFormatter, escape_controls


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad\n2026-01-01 00:00:00 INFO forged: line")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("modelhost.test", logging.INFO, __file__, 1, message, args, exc_info)


def test_escape_controls() -> None:
    assert escape_controls("a\nb\rc\x1b[31m\x00\u2028\x85") == "a\\nb\\rc\\x1b[31m\\x00\\u2028\\x85"
    assert escape_controls("tab\tand caf\u00e9") == "tab\tand caf\u00e9"


def test_a_newline_in_an_argument_stays_on_the_records_line() -> None:
    text = SafeFormatter(LOG_FORMAT).format(record("endpoint %s refused", "x\n2026-01-01 INFO forged: admin login"))
    assert "\n" not in text and text.endswith("endpoint x\\n2026-01-01 INFO forged: admin login refused")


def test_traceback_lines_are_indented() -> None:
    text = SafeFormatter(LOG_FORMAT).format(record("failed", exc=True))
    first, *rest = text.split("\n")
    assert first.endswith("failed") and rest
    assert all(line.startswith("    ") for line in rest)
    assert "Traceback" in rest[0]
