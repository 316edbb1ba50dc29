"""Query-protocol XML stays well-formed whatever a message echoes."""

from __future__ import annotations

from xml.etree import ElementTree

from modelhost.monitoring.xml_text import xml_text


def test_forbidden_characters_are_replaced_and_markup_escaped() -> None:
    text = xml_text("a\x01b<c>&\ud800\ufffe\tok\n")
    assert text == "a\ufffdb&lt;c&gt;&amp;\ufffd\ufffd\tok\n"
    ElementTree.fromstring(f"<m>{text}</m>".encode("utf-8", "surrogatepass"))
