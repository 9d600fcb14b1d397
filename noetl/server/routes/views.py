"""What the web UI reads: executions with their progress, one execution's view (live), one item.

These answers are summaries built by the server (noetl.server.execution_view), so their size does not
grow with the number of items: an execution of 100,000 items is a few kilobytes of numbers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from noetl.engine.events import EventType as T
from noetl.server.errors import ApiError, not_found
from noetl.server.routes import deps
from noetl.server.view_cache import ViewCache
from noetl.store.views_sql import EventFilter, ExecutionFilter

router = APIRouter(prefix="/api/views", tags=["views"])
Store = Annotated[Any, Depends(deps.store)]
STREAM_INTERVAL = 0.25  # how often a live page's stream looks for new events (seconds)
HEARTBEAT = 15.0  # a comment line this often keeps proxies from closing an idle stream
_HINT = "GET /api/views/executions lists recent ones"
_STATUSES = ("RUNNING", "COMPLETED", "FAILED")


def views(request: Request) -> ViewCache:
    cache = getattr(request.app.state, "views", None)
    if cache is None:
        cache = request.app.state.views = ViewCache(request.app.state.store)
    return cache


Views = Annotated[ViewCache, Depends(views)]


@router.get("/executions")
def executions(
    store: Store,
    cache: Views,
    status: Annotated[str | None, Query(description="RUNNING, COMPLETED or FAILED")] = None,
    playbook: Annotated[str | None, Query(description="A part of the playbook path")] = None,
    since: Annotated[str | None, Query(description="Started at or after (ISO-8601)")] = None,
    until: Annotated[str | None, Query(description="Started before (ISO-8601)")] = None,
    parent: Annotated[str | None, Query(description="Only this execution's children")] = None,
    roots: Annotated[bool, Query(description="Only executions that have no parent")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """A page of executions, newest first, with children counts and the progress of running iterators."""
    if status and status.upper() not in _STATUSES:
        raise ApiError(422, f"status {status!r} is not one of {', '.join(_STATUSES)}")
    for name, value in (("since", since), ("until", until)):
        _check_time(name, value)
    f = ExecutionFilter(
        status=status.upper() if status else None,
        playbook=playbook or None,
        since=since,
        until=until,
        parent=parent,
        roots=roots and not parent,
    )
    records = store.find_executions(f, limit=limit, offset=offset)
    facts = store.execution_facts([r.execution_id for r in records])
    rows = []
    for r in records:
        row = {
            "execution_id": r.execution_id,
            "playbook_path": r.playbook_path,
            "status": r.status,
            "created_at": r.created_at,
            "finished_at": r.finished_at,
            "parent_execution_id": r.parent_execution_id,
            "error": r.error,
            **facts.get(r.execution_id, {}),
        }
        if r.status == "RUNNING":
            view = cache.view(r.execution_id)
            row["progress"] = _progress(view) if view else []
        rows.append(row)
    return {"executions": rows, "total": store.count_executions(f), "limit": limit, "offset": offset}


@router.get("/executions/{execution_id}")
def execution(execution_id: str, store: Store, cache: Views) -> dict[str, Any]:
    """The execution page: header, lanes (one per step, a bar per run and attempt) and iterator figures."""
    view = cache.view(execution_id)
    if view is None:
        raise not_found(f"execution {execution_id}", _HINT)
    children = store.find_executions(ExecutionFilter(parent=execution_id), limit=200)
    return {**view, "children": [_child(c) for c in children]}


@router.get("/executions/{execution_id}/stream")
async def stream(execution_id: str, request: Request, cache: Views, after: int = 0) -> StreamingResponse:
    """Server-sent events: `view` with the whole view each time new events are stored (checked every
    0.25 s), until the execution ends. `after`: the last_seq the page already shows."""
    first = await run_in_threadpool(cache.view, execution_id)
    if first is None:
        raise not_found(f"execution {execution_id}", _HINT)

    async def events() -> AsyncIterator[str]:
        seen, quiet = after, 0.0
        view: dict[str, Any] | None = first
        while True:
            if view is not None and view["last_seq"] > seen:
                seen = view["last_seq"]
                quiet = 0.0
                yield f"event: view\nid: {seen}\ndata: {json.dumps(view, default=str)}\n\n"
            if view is not None and view.get("finished") is not None:
                yield "event: end\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(STREAM_INTERVAL)
            quiet += STREAM_INTERVAL
            if quiet >= HEARTBEAT:
                quiet = 0.0
                yield ": still running\n\n"
            if await run_in_threadpool(cache.last_seq, execution_id) > seen:
                view = await run_in_threadpool(cache.view, execution_id)
            else:
                view = None  # nothing new: no view to send

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/executions/{execution_id}/items/{step}/{index}")
def item(execution_id: str, step: str, index: int, store: Store) -> dict[str, Any]:
    """One item of an iterator step: its events, input, result, saves, attempts and error."""
    found = store.query_events(execution_id, EventFilter(node_name=step, index=index), limit=10_000)
    if not found:
        if store.execution(execution_id) is None:
            raise not_found(f"execution {execution_id}", _HINT)
        raise not_found(f"item {index} of step {step!r} in execution {execution_id}", "check the index")
    events = [e.to_dict() for e in found]
    started = [e for e in found if e.event_type == T.ITERATION_STARTED]
    ends = [e for e in found if e.event_type in (T.ITERATION_COMPLETED, T.ITERATION_FAILED)]
    last = ends[-1] if ends else None
    return {
        "execution_id": execution_id,
        "step": step,
        "index": index,
        "status": last.status if last else "RUNNING",
        "input": started[-1].current_item if started else None,
        "result": last.result if last else None,
        "error": last.error if last else None,
        "error_type": last.meta.get("error_type") if last else None,
        "traceback": next((e.meta["traceback"] for e in reversed(found) if e.meta.get("traceback")), None),
        "duration": last.duration if last else None,
        "attempts": [
            {"attempt": e.attempt, "status": e.status, "error": e.error, "duration": e.duration} for e in ends
        ],
        "saves": [e.to_dict() for e in found if e.event_type.startswith("save_")],
        "events": events,
    }


def _progress(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: it[k] for k in ("step", "status", "count", "done", "failed", "running")}
        for it in view["iterators"].values()
    ]


def _child(record: Any) -> dict[str, Any]:
    keys = ("execution_id", "playbook_path", "status", "created_at", "finished_at", "error")
    return {k: getattr(record, k) for k in keys}


def _check_time(name: str, value: str | None) -> None:
    from datetime import datetime

    if value is None:
        return
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, f"{name}={value!r} is not an ISO-8601 time, e.g. 2026-12-01T14:00:00") from None
