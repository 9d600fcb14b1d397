"""Event <-> row conversion shared by the SQL stores; JSON columns hold the structured fields."""

from __future__ import annotations

import json
from typing import Any

from noetl.engine.events import Event

COLUMNS = (
    "execution_id",
    "event_id",
    "parent_execution_id",
    "parent_event_id",
    "event_type",
    "node_name",
    "node_id",
    "node_type",
    "status",
    "created_at",
    "duration",
    "current_index",
    "current_item",
    "attempt",
    "context",
    "result",
    "error",
    "meta",
    "seq",
)
JSON_COLUMNS = frozenset({"current_item", "context", "result", "meta"})


_dumps = json.dumps


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def loads(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode()
    return json.loads(value) if isinstance(value, str) else value


def event_to_row(event: Event, seq: int | None = None) -> tuple[Any, ...]:
    """The row of an event; `seq` is the one the store gives it as it commits (see sequencing)."""
    # Spelled out, not a loop over COLUMNS: this runs for every event and is on the benchmark's hot path.
    e = event
    return (
        e.execution_id,
        e.event_id,
        e.parent_execution_id,
        e.parent_event_id,
        e.event_type,
        e.node_name,
        e.node_id,
        e.node_type,
        e.status,
        e.created_at,
        e.duration,
        e.current_index,
        None if e.current_item is None else _dumps(e.current_item, default=str),
        e.attempt,
        None if e.context is None else _dumps(e.context, default=str),
        None if e.result is None else _dumps(e.result, default=str),
        e.error,
        _dumps(e.meta, default=str) if e.meta else None,
        seq,
    )


def row_to_event(row: Any) -> Event:
    data = {c: (loads(v) if c in JSON_COLUMNS else v) for c, v in zip(COLUMNS, row, strict=True)}
    data["meta"] = data["meta"] or {}
    return Event(**data)
