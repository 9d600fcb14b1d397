"""The http action: one request on the shared client; a non-2xx answer fails the step with its status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from noetl.actions import http_client
from noetl.actions.base import ActionContext
from noetl.errors import ActionError
from noetl.store.ports import CredentialRecord

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_QUERY_METHODS = frozenset({"GET", "DELETE", "HEAD"})  # their inputs are the query string, not a body
_EXPLICIT_KEYS = frozenset({"query", "body"})


def split_inputs(method: str, inputs: Any) -> tuple[Any, Any]:
    """(query, body): `data: {query, body}` says so explicitly; otherwise the method decides."""
    if isinstance(inputs, dict) and inputs and set(inputs) <= _EXPLICIT_KEYS:
        return inputs.get("query"), inputs.get("body")
    if method in _QUERY_METHODS:
        return inputs, None
    return None, inputs


def _credential(ctx: ActionContext, where: str) -> CredentialRecord | None:
    if ctx.task.auth is None:
        return None
    # The step runner renders the action's keys but not `auth`, which may name the credential by template.
    return ctx.services.credentials.resolve(ctx.render(ctx.task.auth), where)


def _masking(ctx: ActionContext) -> Callable[[str], str] | None:
    """The execution's masking of error text (the sink's redactor), to mask an excerpt before it is cut."""
    redactor = getattr(getattr(ctx.services, "sink", None), "redactor", None)
    return getattr(redactor, "error_text", None)


def _result(response: httpx.Response) -> dict[str, Any]:
    # Only what the server answered: the request headers (with their credentials) are never echoed.
    return {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "url": str(response.url),
        "elapsed": round(response.elapsed.total_seconds(), 6),
        "data": http_client.response_data(response),
    }


def run(ctx: ActionContext) -> dict[str, Any]:
    where = f"step '{ctx.step}'"
    method = str(ctx.config.get("method") or "GET").upper()
    if method not in METHODS:
        raise ActionError(
            f"{where}: unknown HTTP method {method!r}; use one of {', '.join(sorted(METHODS))}",
            non_retryable=True,
        )
    url = ctx.config.get("endpoint") or ctx.config.get("url")
    if not url:
        raise ActionError(f"{where}: an http step needs `endpoint` (or `url`)", non_retryable=True)
    url = str(url)
    timeout = http_client.parse_timeout(ctx.config.get("timeout"), where)
    headers = http_client.as_headers(ctx.config.get("headers"), where)
    query, body = split_inputs(method, ctx.inputs)
    credential = _credential(ctx, where)
    try:
        response = http_client.send(
            method,
            url,
            params=http_client.query_params(query, where),
            body=body,
            headers=headers,
            credential=credential,
            timeout=timeout,
            where=where,
            max_bytes=http_client.max_response_bytes(ctx.config.get("max_response_bytes"), where),
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason, message = http_client.transport_failure(exc, method, url, timeout)
        raise ActionError(
            f"{where}: {message}", non_retryable=reason == "invalid_url", error_type=type(exc).__name__
        ) from None
    result = _result(response)
    if not response.is_success:
        raise ActionError(
            f"{where}: HTTP {http_client.status_line(response)} from {method} {response.url}: "
            f"{http_client.excerpt(response, credential, _masking(ctx))}",
            status_code=response.status_code,
            result=result,
            error_type="HTTPStatusError",
        )
    return result
