"""`/health` (always open: says whether the database answers) and `/metrics` (Prometheus text)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from noetl.server import metrics, schemas
from noetl.server.auth import token_matches
from noetl.server.guard import is_loopback
from noetl.server.routes import deps

router = APIRouter(tags=["health"])
Store = Annotated[Any, Depends(deps.store)]


@router.get("/health", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
def health(request: Request, store: Store) -> Any:
    """200 when the database answers, 503 (with the reason) when it does not."""
    try:
        store.executions(1)
        database = "ok"
    except Exception as exc:  # any failure here is the answer, not an error of the endpoint
        database = f"not answering: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    status = "ok" if database == "ok" else "degraded"
    code = 200 if database == "ok" else 503
    if not _may_see_details(request):
        # /health is open to load balancers; a caller without the token (or, on a server without
        # one, a caller from another host) learns whether the server works, not where its database is
        # or why it failed.
        return JSONResponse({"status": status}, status_code=code)
    runner = request.app.state.dispatcher.kind
    workers, queue = _workers(store) if runner == "broker" and database == "ok" else (None, None)
    body = schemas.Health(
        status=status,
        database=database,
        store=request.app.state.store_label,
        runner=runner,
        workers=workers,
        queue=queue,
    )
    return JSONResponse(body.model_dump(), status_code=code)


def _may_see_details(request: Request) -> bool:
    """Details (store, database error, runner, workers, queue) go to a caller holding the token; on a
    server without a token (loopback only, unless started with --allow-no-token), to loopback callers."""
    token = request.app.state.token
    if token:
        return token_matches(request.headers.get("authorization"), token)
    client = request.client.host if request.client else ""
    return is_loopback(client)


def _workers(store: Any) -> tuple[schemas.Workers | None, dict[str, int] | None]:
    """Live workers and queue depth of the PostgreSQL queue; (None, None) if the queue does not answer."""
    from noetl.store.queues import queue_for

    queue = queue_for(store)
    try:
        return schemas.Workers(live=queue.live_workers(), busy=queue.busy_workers()), queue.open_depth()
    except Exception:  # the database answered the first query: this is not worth a 503
        return None, None


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def prometheus(store: Store) -> Response:
    """Counters and histograms of the stored events (read from their rollup), and the queue on PostgreSQL."""
    return Response(metrics.render(store), media_type=metrics.CONTENT_TYPE)
