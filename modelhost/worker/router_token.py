"""The worker's guard: requests other than the health check must carry the router token of this launch.

The launcher draws a random token per worker (WorkerSpec.router_token) and hands it to the router with the
Worker; the router sends it in ROUTER_TOKEN_HEADER on every request. Anyone else on the host who finds the
worker's loopback port gets a 403, so admission, quotas and (once configured) authentication cannot be
bypassed. GET /ping stays open: the controller polls it and it tells nothing but health. An empty token (a
worker started by hand or by a test with its own WorkerSpec) turns the guard off.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from modelhost.contracts.worker import PING_PATH, ROUTER_TOKEN_HEADER

OPEN_PATHS = frozenset({PING_PATH})
REFUSED_MESSAGE = "this worker answers only modelhost's router; invoke the endpoint through the server"


def token_accepted(expected: str, given: str | None) -> bool:
    """Whether a request carrying `given` may pass (constant-time comparison)."""
    if not expected:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode("latin-1", "replace"))


def header_value(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


class RouterTokenGuard:
    """ASGI middleware: 403 for HTTP requests outside OPEN_PATHS without the right token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("path") not in OPEN_PATHS
            and not token_accepted(self._token, header_value(scope, ROUTER_TOKEN_HEADER))
        ):
            body = json.dumps({"code": 403, "message": REFUSED_MESSAGE}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)


def guarded(app: ASGIApp, token: str) -> ASGIApp:
    """`app` behind the guard (unchanged when `token` is empty)."""
    return RouterTokenGuard(app, token) if token else app
