"""Every error leaves the API as JSON {"error": message} with a fitting status code, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from noetl.errors import CredentialError, InputError, NoetlError, PlaybookError, Problem, StoreError

log = logging.getLogger("noetl.server")


class ApiError(Exception):
    """Raised by a route to answer with `status` and a message that says what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(what: str, hint: str) -> ApiError:
    return ApiError(404, f"{what} not found; {hint}")


def problem_dict(p: Problem) -> dict[str, Any]:
    return {"message": p.message, "file": p.file, "line": p.line, "step": p.step, "text": str(p)}


def _json(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _json(exc.status, exc.message)


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint; the API is listed at /docs"
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and what: pydantic's `input` would echo the request body, which may hold credential values.
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
    ]
    return _json(400, "bad request: " + "; ".join(problems), problems=[{"message": p} for p in problems])


def _noetl_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, PlaybookError):
        problems = [problem_dict(p) for p in exc.problems]
        return _json(422, f"the playbook is not valid ({len(problems)} problem(s))", problems=problems)
    if isinstance(exc, InputError):
        return _json(400, str(exc))
    if isinstance(exc, CredentialError):  # the server's key is missing or wrong: not the caller's mistake
        log.error("credential error: %s", exc)
        return _json(500, str(exc))
    if isinstance(exc, StoreError):
        log.error("store error: %s", exc)
        return _json(503, f"the store did not answer: {exc}")
    log.error("request failed: %s: %s", type(exc).__name__, exc)
    return _json(500, str(exc))


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Not logged here: Starlette re-raises after this answer, and uvicorn logs the traceback once.
    return _json(500, f"internal error ({type(exc).__name__}); the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NoetlError, _noetl_error)
    app.add_exception_handler(Exception, _unexpected)
