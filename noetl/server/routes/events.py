"""Event routes: an execution's events (paged by commit order, `seq`, for polling) and their summary."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from noetl.engine.events import ALL_TYPES
from noetl.server import schemas
from noetl.server.errors import ApiError, not_found
from noetl.server.routes import deps
from noetl.server.summary import summarize
from noetl.store.views_sql import EventFilter

router = APIRouter(tags=["events"])
Store = Annotated[Any, Depends(deps.store)]


@router.get("/api/executions/{execution_id}/events", response_model=schemas.EventsPage)
def events(
    execution_id: str,
    store: Store,
    after: Annotated[
        int, Query(ge=0, description="Only events with a larger `seq` (commit order): the last_seq you saw")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    type: Annotated[
        list[str] | None, Query(description="Only these event types (repeat for several)")
    ] = None,
    step: Annotated[str | None, Query(description="Only the events of this step (node_name)")] = None,
    status: Annotated[str | None, Query(description="Only events with this status")] = None,
    index: Annotated[
        int | None, Query(ge=0, description="Only the events of this item (current_index)")
    ] = None,
) -> schemas.EventsPage:
    """Events in commit order; to follow a running execution, ask again with `after=last_seq`.

    `seq` is given as events commit, so no event can appear later below a `seq` already returned: a
    poller that always passes the last `seq` it saw gets every event exactly once. The filters narrow
    the page (the UI's event table); `more` says whether another page follows.
    """
    unknown = sorted(set(type or ()) - ALL_TYPES)
    if unknown:
        raise ApiError(422, f"unknown event type {unknown[0]!r}; the types are listed in docs/events.md")
    # Read the status first: events read after it include everything that status implies.
    record = store.execution(execution_id)
    f = EventFilter(
        types=tuple(type or ()), node_name=step, status=status.upper() if status else None, index=index
    )
    found = store.query_events(execution_id, f, after=after, limit=limit + 1)
    if record is None and not found and after == 0:
        raise not_found(f"execution {execution_id}", "GET /api/executions lists recent ones")
    page = found[:limit]
    return schemas.EventsPage(
        execution_id=execution_id,
        events=[e.to_dict() for e in page],
        last_seq=(page[-1].seq or after) if page else after,
        last_event_id=page[-1].event_id if page else None,
        more=len(found) > limit,
        status=record.status if record else None,
    )


@router.get("/api/events/summary/{execution_id}")
def summary(execution_id: str, store: Store) -> dict[str, Any]:
    """Counts by type and status, each step's status and duration, each iterator's items and timing."""
    found = store.read(execution_id)
    if not found:
        raise not_found(f"execution {execution_id}", "GET /api/executions lists recent ones")
    return summarize(found)
