"""The FastAPI app factory: routes, error handlers, the token guard, and the dispatcher's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from noetl.server import errors
from noetl.server.auth import BearerAuth
from noetl.server.dispatch import Dispatcher, dispatcher_for
from noetl.server.guard import RequestGuard, allowed_hosts
from noetl.server.routes import catalog, credentials, docs, events, executions, graph, health, ui, views
from noetl.server.schema import store_label


def create_app(
    store: Any,
    *,
    token: str | None = None,
    dispatcher: Dispatcher | None = None,
    bind_host: str = "127.0.0.1",
) -> FastAPI:
    """An app serving `store`, which it closes on shutdown; `token` guards every path but /health and
    the UI's shell; `bind_host`: the address it listens on (noetl.server.guard: the Host names served)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Started with the server, not the factory, so a broker thread never outlives uvicorn.
        app.state.dispatcher = dispatcher or dispatcher_for(store)
        try:
            yield
        finally:
            app.state.dispatcher.close()
            store.close()

    app = FastAPI(
        title="NoETL",
        summary="Catalog, executions, events and credentials of a NoETL server",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,  # routes/docs.py serves /docs from vendored assets, not a CDN
        redoc_url=None,
    )
    app.state.store = store
    app.state.token = token or None
    app.state.store_label = store_label(store)
    for module in (catalog, executions, events, graph, credentials, health, ui, docs, views):
        app.include_router(module.router)
    app.mount("/ui", StaticFiles(directory=ui.ASSETS), name="ui")
    errors.install(app)
    if token:
        app.add_middleware(BearerAuth, token=token)
    # Added last, so it runs first: a request from another site is refused before anything else.
    app.add_middleware(RequestGuard, hosts=allowed_hosts(bind_host, token))
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("noetl")
    except PackageNotFoundError:
        return "0"
