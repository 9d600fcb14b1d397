"""`storage: http`: send the rows to an endpoint, one request per row; a non-2xx answer is save_failed."""

from __future__ import annotations

from typing import Any

import httpx

from noetl.actions import http_client
from noetl.actions.base import ActionContext
from noetl.actions.http_action import METHODS
from noetl.actions.save.request import SaveRequest
from noetl.errors import SaveError, SaveFailed


def bodies(request: SaveRequest) -> list[Any]:
    """A list is sent row by row; anything else (a mapping, a text) is sent once, as it is."""
    value = request.args if request.args is not None else request.this
    return list(request.rows()) if isinstance(value, list) else [value]


def _progress(number: int, total: int) -> str:
    # With several rows the user needs to know which ones already reached the target.
    return f" (row {number} of {total}; {number - 1} sent before it)" if total > 1 else ""


def write(request: SaveRequest, ctx: ActionContext) -> int:
    where = f"http save of step '{ctx.step}'"
    options = request.options
    url = options.get("endpoint") or options.get("url")
    if not url:
        raise SaveError("an http save needs `endpoint` (or `url`)", non_retryable=True)
    url = str(url)
    method = str(options.get("method") or "POST").upper()
    if method not in METHODS:
        raise SaveError(
            f"unknown HTTP method {method!r}; use one of {', '.join(sorted(METHODS))}", non_retryable=True
        )
    timeout = http_client.parse_timeout(options.get("timeout"), where)
    headers = http_client.as_headers(options.get("headers"), where)
    rows = bodies(request)
    for number, body in enumerate(rows, 1):
        try:
            response = http_client.send(
                method,
                url,
                body=body,
                headers=headers,
                credential=request.credential,
                timeout=timeout,
                where=where,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            reason, message = http_client.transport_failure(exc, method, url, timeout)
            if reason == "invalid_url":
                raise SaveError(message, non_retryable=True) from None
            raise SaveFailed(
                f"{where}: {message}{_progress(number, len(rows))}",
                reason=reason,
                error_type=type(exc).__name__,
            ) from None
        if not response.is_success:
            raise SaveFailed(
                f"{where}: {method} {url} answered HTTP {http_client.status_line(response)}"
                f"{_progress(number, len(rows))}: {http_client.excerpt(response, request.credential)}",
                reason=f"http_{response.status_code}",
                status_code=response.status_code,
                error_type="HTTPStatusError",
            )
    return len(rows)
