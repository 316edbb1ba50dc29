"""The first check of every HTTP request: the Host header must name this server, and a browser's cross-origin
request must come from an allowed origin.

A web page open in a browser on this host can reach a loopback server through DNS rebinding (its own name
resolving to 127.0.0.1): the Host header then carries the page's name, which is refused here. A page on another
origin that posts to the server sends an `Origin` header naming itself, refused unless configured. boto3, the
aws cli and the OpenAI client send no Origin. The decision is pure (`check_request`); `FrontDoor` is the ASGI
middleware that applies it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True, slots=True)
class Doors:
    """What the server answers to: host names (lower case, no port) and browser origins."""

    hosts: frozenset[str]
    any_host: bool  # a wildcard bind with no configured names: every Host is accepted (requests are signed)
    origins: frozenset[str]  # scheme://host[:port], lower case


def doors(bind_host: str, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> Doors:
    configured = {h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()}
    bind = bind_host.strip().lower().strip("[]")
    hosts = set(LOOPBACK_NAMES) | configured
    if bind not in WILDCARD_BINDS:
        hosts.add(bind)
    return Doors(
        hosts=frozenset(hosts),
        any_host=bind in WILDCARD_BINDS and not configured,
        origins=frozenset(o.strip().lower().rstrip("/") for o in allowed_origins if o.strip()),
    )


def host_name(header: str) -> str:
    """The name in a Host header, without its port; IPv6 literals without brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def check_request(host: str | None, origin: str | None, allowed: Doors) -> str | None:
    """Why the request is refused, or None when it may go on."""
    name = host_name(host or "")
    if not allowed.any_host and name not in allowed.hosts:
        return (
            f"Host {host!r} does not name this server; add it to MODELHOST_ALLOWED_HOSTS to serve it "
            "(this protects a local server from web pages that rebind their name to it)"
        )
    if origin is not None and origin.lower() != "null":
        normalized = origin.strip().lower().rstrip("/")
        same_origin = host_name(urlsplit(normalized).netloc) == name and urlsplit(normalized).netloc == (host or "")
        if not same_origin and normalized not in allowed.origins:
            return f"cross-origin requests from {origin!r} are refused; allow it with MODELHOST_ALLOWED_ORIGINS"
    elif origin is not None:
        return "requests from an opaque origin are refused"
    return None


class FrontDoor:
    def __init__(self, app: ASGIApp, allowed: Doors) -> None:
        self._app = app
        self._allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = check_request(headers.get("host"), headers.get("origin"), self._allowed)
        if refusal is None:
            await self._app(scope, receive, send)
            return
        body = json.dumps({"message": refusal}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"x-amzn-errortype", b"AccessDeniedException")],
            }
        )
        await send({"type": "http.response.body", "body": body})
