"""Catalog routes: register a playbook (validated first), list, get by path and version, versions, diff."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from noetl.dsl import parse_playbook
from noetl.server import schemas
from noetl.server.catalog_rings import check_catalog_rings
from noetl.server.errors import ApiError, not_found
from noetl.server.routes import deps
from noetl.server.textdiff import diff_lines

# No prefix: `/api/catalog/{path:path}` takes every name below /api/catalog/ (paths hold slashes), so the
# versions and the diff live beside it, taking the path as a query parameter.
router = APIRouter(tags=["catalog"])
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


class Registration(schemas.Registered):
    unchanged: bool | None = Field(
        default=None,
        description="Only with if_changed=true: true when the latest version already held this content "
        "(then nothing is added, and the answer is 200), false when a version was added",
    )


@router.post(
    "/api/catalog/register",
    status_code=201,
    response_model=Registration,
    response_model_exclude_none=True,
    openapi_extra=_YAML_BODY,
    responses={
        200: {"model": Registration, "description": "if_changed=true, and the latest version is the same"},
        422: {"model": schemas.ErrorBody, "description": "The playbook is not valid"},
    },
)
async def register(
    request: Request,
    response: Response,
    store: Store,
    if_changed: Annotated[
        bool,
        Query(description="Answer the latest version instead of adding one when its content is the same"),
    ] = False,
) -> Registration:
    """Register a playbook (YAML, or JSON {"content": YAML}); the version goes up by one per path, unless
    if_changed=true and the content is that of the latest version."""
    content = _content(await request.body(), request.headers.get("content-type", ""))
    # The store blocks: keep the event loop free.
    registered = await run_in_threadpool(_register, store, content, if_changed)
    if registered.unchanged:
        response.status_code = 200
    return registered


def _register(store: Any, content: str, if_changed: bool = False) -> Registration:
    # Validated before storing, so the catalog only holds playbooks that workers can run.
    playbook = parse_playbook(content, source="<request>")
    check_catalog_rings(store, playbook)  # a ring through other catalog entries (a -> b -> a)
    if not if_changed:
        version = store.register(playbook.path, playbook.name, content)
        return Registration(path=playbook.path, name=playbook.name, version=version)
    version, unchanged = store.register_if_changed(playbook.path, playbook.name, content)
    return Registration(path=playbook.path, name=playbook.name, version=version, unchanged=unchanged)


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


@router.get("/api/catalog", response_model=list[schemas.CatalogItem])
def list_playbooks(store: Store) -> list[schemas.CatalogItem]:
    """Every registered path with its latest version."""
    return [
        schemas.CatalogItem(path=e.path, name=e.name, version=e.version, created_at=e.created_at)
        for e in store.list_playbooks()
    ]


class CatalogVersion(BaseModel):
    version: int
    name: str
    created_at: str


class CatalogVersions(BaseModel):
    path: str
    versions: list[CatalogVersion] = Field(description="Newest first")


class DiffLine(BaseModel):
    op: str = Field(description="hunk (an @@ header), ctx (unchanged), del (only in a) or add (only in b)")
    text: str
    a_line: int | None = Field(description="The line in version a (a hunk's first line); none for add")
    b_line: int | None = Field(description="The line in version b (a hunk's first line); none for del")


class CatalogDiff(BaseModel):
    path: str
    a: int
    b: int
    added: int
    removed: int
    lines: list[DiffLine] = Field(description="A unified diff, line by line; empty when a and b are equal")


PathQuery = Annotated[str, Query(min_length=1, description="Catalog path of the playbook")]


@router.get("/api/catalog-versions", response_model=CatalogVersions)
def versions(store: Store, path: PathQuery) -> CatalogVersions:
    """Every version of a playbook, newest first (without their YAML)."""
    latest = store.get_playbook(path)
    if latest is None:
        raise not_found(f"playbook {path!r}", "GET /api/catalog lists what is registered")
    # The catalog port reads one version at a time; versions of a path are numbered 1, 2, ... with no gaps.
    entries = [latest] + [store.get_playbook(path, v) for v in range(latest.version - 1, 0, -1)]
    return CatalogVersions(
        path=path,
        versions=[
            CatalogVersion(version=e.version, name=e.name, created_at=e.created_at) for e in entries if e
        ],
    )


@router.get("/api/catalog-diff", response_model=CatalogDiff)
def diff(
    store: Store,
    path: PathQuery,
    a: Annotated[int, Query(ge=1, description="The older version")],
    b: Annotated[int, Query(ge=1, description="The newer version")],
    context: Annotated[int, Query(ge=0, le=1000, description="Unchanged lines around each change")] = 3,
) -> CatalogDiff:
    """What changed in a playbook's YAML from version `a` to version `b`."""
    texts = []
    for version in (a, b):
        entry = store.get_playbook(path, version)
        if entry is None:
            raise not_found(f"playbook {path!r} version {version}", f"GET /api/catalog-versions?path={path}")
        texts.append(entry.content)
    lines = diff_lines(texts[0], texts[1], context)
    return CatalogDiff(
        path=path,
        a=a,
        b=b,
        added=sum(line["op"] == "add" for line in lines),
        removed=sum(line["op"] == "del" for line in lines),
        lines=[DiffLine(**line) for line in lines],
    )


@router.get("/api/catalog/{path:path}", response_model=schemas.CatalogPlaybook)
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
