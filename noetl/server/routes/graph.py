"""Flow-graph routes: a catalog playbook's steps and transitions, and the graph an execution ran.

An execution's graph comes from the best source still there: the catalog version it ran, else the file it
ran from (when that file still holds the same playbook), else its own events (`derived`: only the steps
that ran and the transitions taken).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from noetl.dsl import Playbook, parse_playbook
from noetl.engine.events import Event, EventType
from noetl.errors import NoetlError, PlaybookError
from noetl.runtime.control import sealed_playbook
from noetl.server.errors import not_found
from noetl.server.flow import derived_graph, flow_graph, step_progress
from noetl.server.routes import deps

router = APIRouter(tags=["graph"])
Store = Annotated[Any, Depends(deps.store)]
MAX_SOURCE_BYTES = 2_000_000  # as for a registered playbook
_CATALOG_SOURCE = re.compile(r"^catalog:(?P<path>.+)@(?P<version>\d+)$")  # runtime.control's `source`


@router.get("/api/graph")
def catalog_graph(
    store: Store,
    path: Annotated[str, Query(min_length=1, description="Catalog path of the playbook")],
    version: Annotated[int | None, Query(ge=1, description="The latest when omitted")] = None,
) -> dict[str, Any]:
    """A catalog playbook as nodes (steps, in workflow order) and edges (transitions, with conditions)."""
    entry = store.get_playbook(path, version)
    if entry is None:
        which = f"playbook {path!r}" + (f" version {version}" if version else "")
        raise not_found(which + " in the catalog", "GET /api/catalog lists what is registered")
    playbook = parse_playbook(entry.content, source=f"catalog:{entry.path}@{entry.version}")
    return {
        "path": entry.path,
        "name": entry.name,
        "version": entry.version,
        "source": "catalog",
        "derived": False,
        **flow_graph(playbook),
    }


@router.get("/api/executions/{execution_id}/graph")
def execution_graph(execution_id: str, store: Store) -> dict[str, Any]:
    """The graph of the playbook an execution ran, with each step's latest status and run count.

    `source` says where the graph came from: `catalog` (`version`), `sealed` (a file child a worker
    read, kept beside its log; `file` names it), `file` (`file`) or `events`
    (`derived: true`: only the steps that ran and the transitions taken, without conditions).
    """
    record = store.execution(execution_id)
    events = store.read_workflow(execution_id)  # no item events: a large iterator costs nothing here
    if record is None and not events:
        raise not_found(f"execution {execution_id}", "GET /api/executions lists recent ones")
    context = _start_context(events)
    path = context.get("path") if isinstance(context.get("path"), str) else None
    statuses, runs = step_progress(events)
    playbook, source = _from_catalog(store, context), "catalog"
    if playbook is None:
        playbook, source = _from_sealed(store, execution_id, context), "sealed"
    if playbook is None:
        playbook, source = _from_file(context, set(statuses), path), "file"
    graph = flow_graph(playbook) if playbook is not None else derived_graph(events)
    source = source if playbook is not None else "events"
    return {
        "execution_id": execution_id,
        "status": record.status if record else None,
        "path": path or (record.playbook_path if record else None),
        "version": _version(context),
        "file": playbook.source if playbook is not None and source in ("file", "sealed") else None,
        "source": source,
        "derived": source == "events",
        **graph,
        "statuses": statuses,
        "runs": runs,
    }


def _start_context(events: list[Event]) -> dict[str, Any]:
    for e in events:
        if e.event_type == EventType.EXECUTION_START:
            return e.context if isinstance(e.context, dict) else {}
    return {}


def _version(context: dict[str, Any]) -> int | None:
    """The catalog version an execution ran: given by the broker, or named in the in-process `source`."""
    version = context.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    match = _CATALOG_SOURCE.match(str(context.get("source") or ""))
    return int(match.group("version")) if match else None


def _from_catalog(store: Any, context: dict[str, Any]) -> Playbook | None:
    path, version = context.get("path"), _version(context)
    if not isinstance(path, str) or version is None:
        return None  # a local run names no version, and the catalog's latest may not be what ran
    entry = store.get_playbook(path, version)
    if entry is None:
        return None
    try:
        return parse_playbook(entry.content, source=f"catalog:{entry.path}@{entry.version}")
    except PlaybookError:
        return None  # registered under older rules: the events still tell what ran


def _from_sealed(store: Any, execution_id: str, context: dict[str, Any]) -> Playbook | None:
    """The text of a file child a worker read, as sealed beside its log (runtime.control)."""
    if not context.get("playbook_sealed"):
        return None
    try:
        return sealed_playbook(store, execution_id, context)
    except (NoetlError, PlaybookError):
        return None  # no key here to open it with: the events still tell what ran


def _from_file(context: dict[str, Any], ran: set[str], path: str | None) -> Playbook | None:
    """The playbook file a local run named, if it is still there and still the playbook that ran."""
    source = context.get("source")
    if not isinstance(source, str) or source.startswith(("catalog:", "<")):
        return None
    file = Path(source)  # a relative name is relative to where `noetl run` ran: the server's guess is its cwd
    try:
        # Only YAML files of a playbook's size: the name comes from the log, not from this request.
        if (
            file.suffix not in (".yaml", ".yml")
            or not file.is_file()
            or file.stat().st_size > MAX_SOURCE_BYTES
        ):
            return None
        playbook = parse_playbook(file.read_text(encoding="utf-8"), source=source)
    except (OSError, UnicodeDecodeError, PlaybookError):
        return None
    if (path is not None and playbook.path != path) or not ran <= set(playbook.steps):
        return None  # edited or replaced since the run: its steps would not match the statuses
    return playbook
