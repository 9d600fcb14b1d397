"""Bearer-token protection: when a token is configured, every path but /health needs it."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health"})
_MISSING = b"this server needs a token: send the header 'Authorization: Bearer <NOETL_API_TOKEN>'"
_WRONG = b"the token is not valid; send the server's NOETL_API_TOKEN as 'Authorization: Bearer <token>'"


def token_matches(header: str | None, token: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte from response times."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value:  # RFC 7235: the scheme is case-insensitive
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


class BearerAuth:
    """ASGI middleware answering 401 before any route runs, so unknown paths and /docs are covered too."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization")
        value = header.decode("latin-1") if header else None
        if token_matches(value, self.token):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": (_WRONG if value else _MISSING).decode()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
