"""The server's log format, with control characters escaped so that no logged value can forge a log line.

Names, URLs and messages that clients send end up in log records; a newline or carriage return in one of
them would start what looks like a record of its own. `SafeFormatter` writes each record's message on one
line (control characters as `\\n`, `\\r`, `\\x1b`, ...) and indents the lines of tracebacks, so every line
that starts at column 0 is a record the server wrote.
"""

from __future__ import annotations

import logging
from types import TracebackType

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\t"}  # tabs cannot start a line: kept as they are
_ESCAPES = {code: _NAMED.get(chr(code), f"\\x{code:02x}") for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})  # Unicode line and paragraph separators
TRACEBACK_INDENT = "    "

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def escape_controls(text: str) -> str:
    """`text` with every control character (tab aside) written as an escape; pure."""
    return text.translate(_ESCAPES)


def _indented(text: str) -> str:
    return "\n".join(TRACEBACK_INDENT + escape_controls(line) for line in text.split("\n"))


class SafeFormatter(logging.Formatter):
    """A Formatter whose records are one line each; tracebacks and stacks follow, indented."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: ExcInfo) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def configure_logging(level: str) -> None:
    """The server's root logging: `LOG_FORMAT` to stderr through SafeFormatter."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SafeFormatter(LOG_FORMAT))
