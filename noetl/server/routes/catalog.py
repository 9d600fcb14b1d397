"""Catalog routes: register a playbook (validated first), list, get by path and version."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from noetl.dsl import parse_playbook
from noetl.server import schemas
from noetl.server.errors import ApiError, not_found
from noetl.server.routes import deps

router = APIRouter(prefix="/api/catalog", tags=["catalog"])
Store = Annotated[Any, Depends(deps.store)]
MAX_PLAYBOOK_BYTES = 2_000_000

_YAML_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-yaml": {
                "schema": {"type": "string"},
                "example": "apiVersion: noetl.io/v1\nkind: Playbook\n...",
            },
            "application/json": {"schema": {"type": "object", "properties": {"content": {"type": "string"}}}},
        },
    }
}


@router.post(
    "/register",
    status_code=201,
    response_model=schemas.Registered,
    openapi_extra=_YAML_BODY,
    responses={422: {"model": schemas.ErrorBody, "description": "The playbook is not valid"}},
)
async def register(request: Request, store: Store) -> schemas.Registered:
    """Register a playbook (YAML, or JSON {"content": YAML}); the version goes up by one per path."""
    content = _content(await request.body(), request.headers.get("content-type", ""))
    return await run_in_threadpool(_register, store, content)  # the store blocks: keep the event loop free


def _register(store: Any, content: str) -> schemas.Registered:
    # Validated before storing, so the catalog only holds playbooks that workers can run.
    playbook = parse_playbook(content, source="<request>")
    version = store.register(playbook.path, playbook.name, content)
    return schemas.Registered(path=playbook.path, name=playbook.name, version=version)


def _content(body: bytes, content_type: str) -> str:
    if len(body) > MAX_PLAYBOOK_BYTES:
        raise ApiError(413, f"the playbook is larger than {MAX_PLAYBOOK_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text; send the playbook's YAML") from None
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiError(400, f'the JSON body is not valid ({exc.msg}); send {{"content": YAML}}') from None
        if not isinstance(data, dict) or not isinstance(data.get("content"), str):
            raise ApiError(400, 'a JSON body must be {"content": "<the playbook YAML>"}')
        text = data["content"]
    if not text.strip():
        raise ApiError(400, "the body is empty; send the playbook's YAML")
    return text


@router.get("", response_model=list[schemas.CatalogItem])
def list_playbooks(store: Store) -> list[schemas.CatalogItem]:
    """Every registered path with its latest version."""
    return [
        schemas.CatalogItem(path=e.path, name=e.name, version=e.version, created_at=e.created_at)
        for e in store.list_playbooks()
    ]


@router.get("/{path:path}", response_model=schemas.CatalogPlaybook)
def get_playbook(
    path: str,
    store: Store,
    version: Annotated[int | None, Query(ge=1, description="The latest when omitted")] = None,
) -> schemas.CatalogPlaybook:
    """One playbook: its latest version, or `?version=N`."""
    entry = store.get_playbook(path, version)
    if entry is None:
        which = f"playbook {path!r} version {version}" if version else f"playbook {path!r}"
        raise not_found(which, "GET /api/catalog lists what is registered")
    return schemas.CatalogPlaybook(
        path=entry.path,
        name=entry.name,
        version=entry.version,
        content=entry.content,
        created_at=entry.created_at,
    )
