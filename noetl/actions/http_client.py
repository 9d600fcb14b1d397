"""HTTP plumbing shared by the http action and the http save: one pooled client, auth headers, bodies."""

from __future__ import annotations

import base64
import contextlib
import http.cookiejar
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from noetl.errors import ActionError
from noetl.store.ports import CredentialRecord

SUPPORTED_AUTH = ("bearer", "token", "basic", "header", "api_key")
MASK = "***"
_EXCERPT = 200  # characters of an error answer quoted in the message
_MIN_SECRET_LENGTH = 4  # as the event redactor: shorter values would mask innocent text

MAX_RESPONSE_BYTES = 100 * 1024 * 1024  # an answer's body, decoded; per step with `max_response_bytes`
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_lock = threading.Lock()
_client: httpx.Client | None = None
_client_pid = 0


def _new_client() -> httpx.Client:
    # The client is shared by every execution in the process, so it must not carry state between them:
    # a cookie set by one server answer would otherwise be sent with another execution's requests.
    no_cookies = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(
        cookies=no_cookies,
        follow_redirects=True,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=32, keepalive_expiry=30.0),
        headers={"User-Agent": "noetl"},
    )


def client() -> httpx.Client:
    """The process-wide client, created on first use; iterators making many calls reuse its connections."""
    global _client, _client_pid
    with _lock:
        # A pool inherited through fork() shares sockets with the parent: start a fresh one in the child.
        if _client is None or _client_pid != os.getpid():
            _client, _client_pid = _new_client(), os.getpid()
        return _client


def close() -> None:
    """Close the shared client (tests, shutdown); the next call to `client()` opens a new one."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None


def credential_headers(record: CredentialRecord, where: str) -> dict[str, str]:
    """The request headers a credential stands for; never logged, never returned in a result."""
    kind = (record.type or "").lower()
    data = record.data
    if kind in ("bearer", "token"):
        # `value` is what an env/secret source yields: `auth: {source: env, name: API_TOKEN, type: bearer}`.
        token = data.get("token") or data.get("value")
        if not token:
            raise _bad_credential(record, where, "a `token` field")
        return {"Authorization": f"Bearer {token}"}
    if kind == "basic":
        user, password = data.get("username") or data.get("user"), data.get("password")
        if user is None or password is None:
            raise _bad_credential(record, where, "`username` and `password` fields")
        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {pair}"}
    if kind in ("header", "api_key"):
        name, value = data.get("name"), data.get("value")
        if not name or value is None:
            raise _bad_credential(record, where, "`name` (the header) and `value` fields")
        return {str(name): str(value)}
    raise ActionError(
        f"{where}: credential '{record.name}' has type {record.type!r}, which an HTTP request cannot use; "
        f"supported types: {', '.join(SUPPORTED_AUTH)}",
        non_retryable=True,
    )


def _bad_credential(record: CredentialRecord, where: str, needs: str) -> ActionError:
    # Name the fields present, never their values.
    present = ", ".join(sorted(record.data)) or "none"
    return ActionError(
        f"{where}: credential '{record.name}' of type {record.type} needs {needs}; it has: {present}",
        non_retryable=True,
    )


def scrub(text: str, record: CredentialRecord | None) -> str:
    """Mask the credential's values in text quoted from a server (some echo the request back)."""
    if record is None:
        return text
    secrets = [v for v in record.data.values() if isinstance(v, str)]
    # The encoded forms too: a server echoing `Authorization: Basic ...` leaks user:password.
    # An unusable credential raises here, but it was never sent either.
    with contextlib.suppress(ActionError):
        secrets += [v.split(" ", 1)[-1] for v in credential_headers(record, "").values()]
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= _MIN_SECRET_LENGTH:
            text = text.replace(value, MASK)
    return text


def excerpt(
    response: httpx.Response, credential: CredentialRecord | None, mask: Callable[[str], str] | None = None
) -> str:
    """The start of the body on one line, with credential values masked, for error messages.

    `mask`: the execution's own masking (every secret it knows, not only this request's credential)."""
    # Masked before it is cut: a cut made first could leave part of a token that the mask no longer matches.
    text = scrub(response.text[: _EXCERPT * 20], credential)
    if mask is not None:
        text = mask(text)
    return " ".join(text.split())[:_EXCERPT] or "(empty body)"


def status_line(response: httpx.Response) -> str:
    """`503 Service Unavailable`: the standard phrase, whatever case or wording the server used."""
    phrase = httpx.codes.get_reason_phrase(response.status_code) or response.reason_phrase
    return f"{response.status_code} {phrase}".rstrip()


def as_headers(value: Any, where: str) -> dict[str, Any]:
    """`headers` as given in the playbook: a mapping name -> value, or nothing."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ActionError(
            f"{where}: `headers` must be a mapping name -> value, got {type(value).__name__}",
            non_retryable=True,
        )
    return value


def encode_body(value: Any) -> tuple[str | bytes | None, str | None]:
    """(content, content type): a string or bytes goes as-is, anything else as JSON, None as no body."""
    if value is None:
        return None, None
    if isinstance(value, (str, bytes)):
        return value, None
    # default=str: rendered templates may hold dates or decimals, which a server reads fine as text.
    return json.dumps(value, default=str), "application/json"


def query_params(value: Any, where: str) -> Any:
    """Query parameters from the inputs: nested mappings are sent as JSON text, None as an empty value."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise ActionError(
            f"{where}: query parameters must be a mapping name -> value, got {type(value).__name__}",
            non_retryable=True,
        )
    return {str(k): _param(v) for k, v in value.items()}


def _param(value: Any, nested: bool = False) -> Any:
    if isinstance(value, list) and not nested:  # a list repeats the parameter: ?tag=a&tag=b
        return [_param(v, nested=True) for v in value]
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    if value is None:
        return ""
    return value if isinstance(value, (str, int, float, bool)) else str(value)


class ResponseTooLarge(ActionError):
    """The answer's body passed `max_response_bytes`: refused before it fills the memory."""


class DeadlinePassed(httpx.TimeoutException):
    """The whole answer did not arrive within `timeout` (a server that drips its body)."""


def send(
    method: str,
    url: str,
    *,
    params: Any = None,
    body: Any = None,
    headers: dict[str, Any] | None = None,
    credential: CredentialRecord | None = None,
    timeout: float,
    where: str,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> httpx.Response:
    """Send one request on the shared client; httpx's own errors propagate for the caller to word.

    `timeout` is a deadline for the whole answer, not only for each read: the body is read in chunks
    and the request fails once the deadline passes, so a server sending a byte a second cannot hold a
    step for ever. The body (decoded) may hold at most `max_bytes`.
    """
    content, content_type = encode_body(body)
    merged = httpx.Headers({str(k): str(v) for k, v in (headers or {}).items() if v is not None})
    if content_type and "content-type" not in merged:
        merged["Content-Type"] = content_type
    if credential is not None:
        merged.update(credential_headers(credential, where))  # an explicit `auth` wins over a header
    deadline = time.monotonic() + timeout
    http = client()
    request = http.build_request(method, url, params=params, content=content, headers=merged, timeout=timeout)
    response = http.send(request, stream=True)
    try:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(where, method, url, int(declared), max_bytes)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(where, method, url, size, max_bytes)
            if time.monotonic() > deadline:
                raise DeadlinePassed(f"the whole answer took longer than {timeout:g}s", request=request)
            chunks.append(chunk)
    finally:
        response.close()
    # The body as read (decoded): the new response carries it without the encoding it no longer has.
    kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_HEADERS]
    answer = httpx.Response(response.status_code, headers=kept, content=b"".join(chunks), request=request)
    answer.elapsed = response.elapsed
    return answer


def _too_large(where: str, method: str, url: str, size: int, limit: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"{where}: the answer to {method} {url} is larger than {limit:,} bytes ({size:,} so far); raise "
        "`max_response_bytes` on the step if that much is expected",
        non_retryable=True,
        error_type="ResponseTooLarge",
    )


def max_response_bytes(value: Any, where: str) -> int:
    """`max_response_bytes` of a step: a whole number of bytes above zero (default 100 MB)."""
    if value is None or value == "":
        return MAX_RESPONSE_BYTES
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if limit <= 0:
        raise ActionError(
            f"{where}: `max_response_bytes` must be a whole number of bytes above 0, got {value!r}",
            non_retryable=True,
        )
    return limit


def transport_failure(exc: Exception, method: str, url: str, timeout: float) -> tuple[str, str]:
    """(reason, message) for a request that got no answer: timeout, connection_error or invalid_url."""
    if isinstance(exc, DeadlinePassed):
        return "timeout", (
            f"{method} {url} did not finish its answer within the timeout of {timeout:g}s (the deadline "
            "covers the whole answer); raise `timeout` or check the server"
        )
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", (
            f"{method} {url} got no answer within the timeout of {timeout:g}s ({type(exc).__name__}); "
            f"raise `timeout` or check the server"
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return "invalid_url", f"{method} {url}: the URL is not valid ({exc}); use http://host[:port]/path"
    detail = f"{str(exc) or type(exc).__name__}; timeout {timeout:g}s"
    if isinstance(exc, httpx.ConnectError):
        return "connection_error", (
            f"{method} {url} could not connect ({detail}); check that the server is running and the URL is right"
        )
    return "connection_error", f"{method} {url}: the connection broke before a full answer came ({detail})"


def parse_timeout(value: Any, where: str, default: float = 30.0) -> float:
    """`timeout` in seconds: a number or numeric text, above zero."""
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds <= 0:
        raise ActionError(
            f"{where}: `timeout` must be a number of seconds above 0, got {value!r}", non_retryable=True
        )
    return seconds


def response_data(response: httpx.Response) -> Any:
    """The body: parsed JSON when the server says it is JSON, otherwise text."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return response.json()
        except ValueError:
            pass  # a server that mislabels its body: the text is still worth keeping
    return response.text
