"""Execution routes: run a catalog playbook, list, get, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from noetl.engine.events import EventType as T
from noetl.server import schemas
from noetl.server.dispatch import Dispatcher
from noetl.server.errors import ApiError, not_found
from noetl.server.routes import deps
from noetl.store.views_sql import EventFilter

router = APIRouter(tags=["executions"])
Store = Annotated[Any, Depends(deps.store)]
Dispatch = Annotated[Dispatcher, Depends(deps.dispatcher)]
_LIST_HINT = "GET /api/executions lists recent ones"


@router.post("/api/executions/run", status_code=202, response_model=schemas.RunResponse)
def run(body: schemas.RunRequest, store: Store, dispatch: Dispatch) -> schemas.RunResponse:
    """Start an execution of a catalog playbook; poll its events or status for the outcome."""
    if store.get_playbook(body.path, body.version) is None:
        which = f"playbook {body.path!r}" + (f" version {body.version}" if body.version else "")
        raise not_found(which + " in the catalog", "register it first (POST /api/catalog/register)")
    execution_id = dispatch.start(body.path, body.parameters, merge=body.merge, version=body.version)
    record = store.execution(execution_id)
    return schemas.RunResponse(execution_id=execution_id, status=record.status if record else "STARTED")


@router.post("/api/execute", status_code=202, response_model=schemas.RunResponse)
def execute(body: schemas.RunRequest, store: Store, dispatch: Dispatch) -> schemas.RunResponse:
    """The same as POST /api/executions/run."""
    return run(body, store, dispatch)


@router.get("/api/executions", response_model=list[schemas.Execution])
def list_executions(
    store: Store, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[schemas.Execution]:
    """The most recent executions first."""
    return [schemas.Execution(**r.__dict__) for r in store.executions(limit)]


@router.get("/api/executions/{execution_id}", response_model=schemas.Execution)
def get_execution(execution_id: str, store: Store) -> schemas.Execution:
    """One execution's status, result and error."""
    return schemas.Execution(**_record(store, execution_id).__dict__)


@router.post(
    "/api/executions/{execution_id}/cancel",
    response_model=schemas.CancelResponse,
    responses={409: {"model": schemas.ErrorBody, "description": "Already finished"}},
)
def cancel(execution_id: str, store: Store, dispatch: Dispatch) -> schemas.CancelResponse:
    """Fail an unfinished execution: its queued jobs are dropped and `execution_failed` says why."""
    record = _record(store, execution_id)
    if record.status in ("COMPLETED", "FAILED"):
        raise ApiError(409, f"execution {execution_id} already finished ({record.status}); nothing to cancel")
    cancelled = dispatch.cancel(execution_id, "cancelled through the API")
    after = store.execution(execution_id) or record
    return schemas.CancelResponse(execution_id=execution_id, cancelled=cancelled, status=after.status)


@router.post(
    "/api/executions/{execution_id}/retry",
    status_code=202,
    response_model=schemas.RetryResponse,
    responses={409: {"model": schemas.ErrorBody, "description": "Still running"}},
)
def retry(
    execution_id: str, body: schemas.RetryRequest, store: Store, dispatch: Dispatch, request: Request
) -> schemas.RetryResponse:
    """Run the failed items (and the items named) of an iterator step of a finished execution again,
    in the same execution; the items that succeeded keep their results. Poll it as a new run."""
    from noetl.engine.retry import RetryRequest, parse_items

    record = _record(store, execution_id)
    if record.status == "RUNNING":
        raise ApiError(409, f"execution {execution_id} is still running; retry it once it has ended")
    items = parse_items(body.items) if isinstance(body.items, str) else tuple(sorted(set(body.items or ())))
    if any(i < 0 for i in items):
        raise ApiError(400, "items: indexes start at 0")
    who = "api" + (f" ({request.client.host})" if request.client else "")
    meta = dispatch.retry(execution_id, RetryRequest(body.step, items, body.proceed, who))
    after = store.execution(execution_id) or record
    retries = store.query_events(execution_id, EventFilter(types=(T.EXECUTION_RETRY,)), limit=100_000)
    return schemas.RetryResponse(
        execution_id=execution_id,
        step=meta["step"],
        items=meta["items"],
        items_count=meta["items_count"],
        kept=meta["kept"],
        total=meta["total"],
        status=after.status,
        retry_seq=retries[-1].seq or 0 if retries else 0,
    )


def _record(store: Any, execution_id: str) -> Any:
    record = store.execution(execution_id)
    if record is None:
        raise not_found(f"execution {execution_id}", _LIST_HINT)
    return record
