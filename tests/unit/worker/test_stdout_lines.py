"""Printed lines get their own timestamp; partial lines wait for their newline or a flush."""

from __future__ import annotations

import io
import re

from modelhost.worker.stdout import StampedLines, stamp

STAMPED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z stdout: (.*)$")


def test_each_complete_line_is_stamped() -> None:
    target = io.StringIO()
    out = StampedLines(target)
    print("hello", file=out)
    print("a\nb", file=out)
    out.write("partial")
    lines = target.getvalue().splitlines()
    assert [STAMPED.match(line).group(1) for line in lines] == ["hello", "a", "b"]  # type: ignore[union-attr]
    out.flush()
    assert STAMPED.match(target.getvalue().splitlines()[-1]).group(1) == "partial"  # type: ignore[union-attr]


def test_stamp_form() -> None:
    assert stamp(0.25) == "1970-01-01T00:00:00.250Z"
