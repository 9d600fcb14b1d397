"""Render an execution's events as a readable terminal timeline (used by `noetl events` and `run`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from noetl.engine.events import Event
from noetl.engine.events import EventType as T

_INDENT = {"iteration": 4, "save": 6}
_ITEM_TYPES = frozenset({T.ITERATION_STARTED, T.ITERATION_COMPLETED, T.ITERATION_FAILED})


def _offset(event: Event, start: datetime | None) -> str:
    if start is None or not event.created_at:
        return ""
    return f"+{(datetime.fromisoformat(event.created_at) - start).total_seconds():8.3f}s"


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_timeline(events: Sequence[Event], *, max_items: int = 20) -> str:
    """One line per event; iterations past `max_items` per step are folded into a count line."""
    if not events:
        return "(no events)"
    start = datetime.fromisoformat(events[0].created_at) if events[0].created_at else None
    lines = [f"{'#':>5} {'time':>10}  {'step / node':<34} {'event':<20} {'status':<10} {'dur':>9}  detail"]
    shown_items: Counter[str] = Counter()
    hidden: Counter[str] = Counter()
    for e in events:
        if e.current_index is not None and e.current_index >= max_items:
            hidden[e.node_name or ""] += 1
            continue
        if e.event_type in _ITEM_TYPES:
            shown_items[e.node_name or ""] += 1
        indent = _INDENT.get(e.node_type or "", 0 if e.node_type == "playbook" else 2)
        if e.node_type == "save" and e.current_index is None:
            indent = 4
        name = (" " * indent + (e.node_id or e.node_name or ""))[:34]
        dur = f"{e.duration:.3f}s" if e.duration is not None else ""
        lines.append(
            f"{e.event_id:>5} {_offset(e, start):>10}  {name:<34} {e.event_type:<20} {e.status or '':<10} "
            f"{dur:>9}  {_detail(e)}"
        )
        if e.event_type in (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED) and hidden[e.node_name or ""]:
            lines.insert(
                len(lines) - 1,
                f"{'':>5} {'':>10}    ... {hidden[e.node_name or '']} more events of "
                f"items >= {max_items} (noetl events --all shows them)",
            )
    return "\n".join(lines)


def _detail(e: Event) -> str:
    if e.error:
        return "error: " + _short(e.error.splitlines()[0] if e.error else "", 100)
    meta = e.meta or {}
    if e.event_type == T.ITERATOR_STARTED:
        return f"count={meta.get('count')} mode={meta.get('mode')} concurrency={meta.get('concurrency')}"
    if e.event_type in (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED):
        return (
            f"ok={meta.get('succeeded')} failed={meta.get('failed')} p50={meta.get('p50')}s "
            f"p95={meta.get('p95')}s rows={meta.get('rows_saved')} {meta.get('items_per_second')}/s"
        )
    if e.event_type == T.SAVE_COMPLETED:
        return f"rows={meta.get('rows')}"
    if e.event_type == T.ACTION_RETRY:
        return f"next attempt {meta.get('next_attempt')} in {meta.get('delay')}s"
    if e.event_type == T.STEP_COMPLETED and meta.get("next"):
        return "next: " + ", ".join(t["step"] for t in meta["next"])
    if e.current_item is not None:
        return "item: " + _short(e.current_item)
    if e.event_type in (T.EXECUTION_COMPLETE, T.ACTION_COMPLETED) and e.result is not None:
        return "result: " + _short(e.result)
    return ""
