"""Token protection: when a token is configured, the API needs it as a bearer header or a session cookie.

The web UI asks for the token once (POST /api/session) and keeps it in an HttpOnly, SameSite=Strict
cookie (a value derived from the token, not the token): scripts on the page cannot read it, and a request from another site does not carry it. The page
shell and its static assets are open, since they hold no data; every data route needs the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_COOKIE = "noetl_session"
OPEN_PATHS = frozenset({"/health", "/", "/api/session", "/favicon.ico"})
OPEN_PREFIXES = ("/ui/",)
_MISSING = b"this server needs a token: send the header 'Authorization: Bearer <NOETL_API_TOKEN>'"
_WRONG = b"the token is not valid; send the server's NOETL_API_TOKEN as 'Authorization: Bearer <token>'"


def token_matches(header: str | None, token: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte from response times."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value:  # RFC 7235: the scheme is case-insensitive
        return False
    return value_matches(value.strip(), token)


def value_matches(value: str | None, token: str) -> bool:
    return bool(value) and hmac.compare_digest((value or "").encode(), token.encode())


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, so the token itself never sits in a browser."""
    return hmac.new(token.encode(), b"noetl ui session", hashlib.sha256).hexdigest()


def session_matches(cookie: str | None, token: str) -> bool:
    return value_matches(cookie, session_value(token))


def cookie_value(header: str | None, name: str = SESSION_COOKIE) -> str | None:
    """The value of cookie `name` in a Cookie header, or None."""
    for part in (header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class BearerAuth:
    """ASGI middleware answering 401 before any route runs, so unknown paths and /docs are covered too."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        header = headers.get(b"authorization")
        value = header.decode("latin-1") if header else None
        cookie = cookie_value(headers.get(b"cookie", b"").decode("latin-1"))
        if token_matches(value, self.token) or (value is None and session_matches(cookie, self.token)):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": (_WRONG if value or cookie else _MISSING).decode()}).encode()
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
