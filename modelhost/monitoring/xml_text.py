"""Text as XML 1.0 may carry it: `&`, `<`, `>` escaped, and every character XML forbids (C0 controls other than
tab, newline and carriage return; lone surrogates; U+FFFE, U+FFFF) replaced by U+FFFD, so an error message that
echoes a client's bytes is still a document every query-protocol client can parse (pure)."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    return escape(_FORBIDDEN.sub("\ufffd", value))
