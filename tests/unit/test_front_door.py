"""The Host and Origin checks (pure)."""

from __future__ import annotations

import pytest

from modelhost.front_door import check_request, doors, host_name

LOCAL = doors("127.0.0.1", [], [])


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:8080", "127.0.0.1"), ("LOCALHOST", "localhost"), ("[::1]:9", "::1"), ("ex.com", "ex.com")],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("host", "origin", "allowed"),
    [
        ("127.0.0.1:8080", None, True),
        ("localhost:8080", None, True),
        ("[::1]:8080", None, True),
        ("evil.example:8080", None, False),  # DNS rebinding: the page's own name, resolved to 127.0.0.1
        (None, None, False),
        ("127.0.0.1:8080", "http://127.0.0.1:8080", True),  # same origin
        ("127.0.0.1:8080", "https://evil.example", False),
        ("127.0.0.1:8080", "http://localhost:8080", False),  # another origin, though the same machine
        ("127.0.0.1:8080", "null", False),
    ],
)
def test_loopback_server(host: str | None, origin: str | None, allowed: bool) -> None:
    assert (check_request(host, origin, LOCAL) is None) is allowed


def test_configured_names_and_origins() -> None:
    allowed = doors("0.0.0.0", ["models.internal"], ["https://console.internal"])
    assert check_request("models.internal:8080", "https://console.internal", allowed) is None
    assert check_request("other.internal:8080", None, allowed) is not None
    assert check_request("models.internal", "https://evil.example", allowed) is not None


def test_a_wildcard_bind_without_names_accepts_any_host_but_still_checks_origins() -> None:
    allowed = doors("0.0.0.0", [], [])
    assert check_request("10.0.0.5:8080", None, allowed) is None
    assert check_request("10.0.0.5:8080", "https://evil.example", allowed) is not None
