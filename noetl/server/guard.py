"""Requests a browser could be tricked into sending are refused before any route runs.

Whoever can register or run a playbook runs code as the server's workers, so the API must not be
reachable from another web site the user happens to visit:

- **Host** (DNS rebinding: a site whose name is made to resolve to 127.0.0.1): a server without a token
  answers only for loopback names, the address it listens on and `NOETL_ALLOWED_HOSTS`. With a token,
  any Host is served (a rebinding page cannot know the token), unless NOETL_ALLOWED_HOSTS narrows it.
- **Origin** (cross-site writes): a POST, PUT, PATCH or DELETE that a browser sent from another origin
  is refused. Clients that are not browsers send no Origin and are not affected.
- **Content-Type** of writes: JSON, or YAML for a playbook. A cross-site form or `text/plain` fetch
  (which a browser sends without asking the server first) is refused.
- **Size** of a request body, by its Content-Length: 16 MB (`NOETL_MAX_REQUEST_BYTES`), 413 beyond.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

ALLOWED_HOSTS_ENV = "NOETL_ALLOWED_HOSTS"
MAX_BODY_ENV = "NOETL_MAX_REQUEST_BYTES"
MAX_BODY = 16 * 1024 * 1024  # a request body (a playbook has its own 2 MB limit in its route)
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON = ("application/json",)
_YAML = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")
YAML_PATHS = frozenset({"/api/catalog/register"})


def allowed_hosts(bind_host: str | None, token: str | None, env: str | None = None) -> frozenset[str] | None:
    """The Host names served, or None for any. Names are lower case, without a port."""
    given = os.environ.get(ALLOWED_HOSTS_ENV, "") if env is None else env
    extra = {h.strip().lower().strip("[]") for h in given.split(",") if h.strip()}
    if "*" in extra:
        return None
    if token and not extra:
        return None
    names = set(LOOPBACK_NAMES) | extra
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        names.add(bind_host.lower().strip("[]"))
    return frozenset(names)


def host_name(value: str) -> str:
    """'Example.com:8083' -> 'example.com'; '[::1]:8083' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_loopback(host: str) -> bool:
    return host_name(host) in LOOPBACK_NAMES or host_name(host).startswith("127.")


class RequestGuard:
    """ASGI middleware: Host, Origin and Content-Type checks (see the module's docstring)."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str] | None, max_body: int | None = None) -> None:
        self.app = app
        self.hosts = frozenset(hosts) if hosts is not None else None
        self.max_body = max_body or int(os.environ.get(MAX_BODY_ENV) or MAX_BODY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], scope["path"], headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        body = json.dumps({"error": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def refusal(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            return (
                421,
                f"this server does not answer for the host {host_name(host)!r}; add it to "
                f"{ALLOWED_HOSTS_ENV} (comma-separated) if it is really this server's name",
            )
        if method not in _WRITES:
            return None
        origin = headers.get("origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != host.lower()):
            return 403, "a cross-site request was refused: the API takes writes only from its own pages"
        declared = headers.get("content-length") or "0"
        length = int(declared) if declared.isdigit() else 0  # the server refuses a malformed one itself
        if length > self.max_body:
            return (
                413,
                f"the request body is {length:,} bytes, over the server's limit of {self.max_body:,} "
                f"({MAX_BODY_ENV} raises it)",
            )
        if length == 0 and "transfer-encoding" not in headers:
            return None  # no body (sign out, cancel): nothing to misread
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        accepted = _JSON + (_YAML if path in YAML_PATHS else ())
        if content_type not in accepted:
            return (
                415,
                f"send the body as {' or '.join(accepted)} (got {content_type or 'no Content-Type'})",
            )
        return None
