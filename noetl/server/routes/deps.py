"""What routes need from the app: the store, the dispatcher and whether a token guards the API."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from noetl.server.dispatch import Dispatcher


def store(request: Request) -> Any:
    return request.app.state.store


def dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


def token_configured(request: Request) -> bool:
    return bool(request.app.state.token)
