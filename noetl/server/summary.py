"""An execution's events summed up: counts, each step's status and timing, each iterator's items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from noetl.engine.events import Event
from noetl.engine.events import EventType as T

_STEP_TYPES = frozenset({T.STEP_STARTED, T.STEP_COMPLETED, T.STEP_FAILED})
_ITERATOR_END = frozenset({T.ITERATOR_COMPLETED, T.ITERATOR_FAILED})
_ITEM_END = {T.ITERATION_COMPLETED: "completed", T.ITERATION_FAILED: "failed"}
# The figures of iterator_completed/_failed meta that the summary passes on as they are.
_ITERATOR_FIGURES = ("failed_indexes", "items_per_second", "p50", "p95", "max", "rows_saved")
_EXECUTION_TYPES = frozenset({T.EXECUTION_START, T.EXECUTION_COMPLETE, T.EXECUTION_FAILED})


def summarize(events: Sequence[Event]) -> dict[str, Any]:
    """Pure: the same events always give the same summary, while running or after the end."""
    steps: dict[str, dict[str, Any]] = {}
    iterators: dict[str, dict[str, Any]] = {}
    execution: dict[str, Any] = {
        "status": "UNKNOWN",
        "started_at": None,
        "finished_at": None,
        "duration": None,
        "error": None,
    }
    for e in events:
        if e.event_type in _EXECUTION_TYPES:
            _execution(execution, e)
        elif e.event_type in _STEP_TYPES:
            _step(steps.setdefault(e.node_name or "", _new_step()), e)
        elif e.event_type == T.ACTION_STARTED:
            step = steps.setdefault(e.node_name or "", _new_step())
            step["attempts"] = max(step["attempts"], e.attempt or 1)
        elif e.event_type == T.ITERATOR_STARTED or e.event_type in _ITERATOR_END or e.event_type in _ITEM_END:
            _iterator(iterators, e)
    return {
        "execution_id": events[0].execution_id if events else None,
        "execution": execution,
        "events": len(events),
        "by_type": dict(Counter(e.event_type for e in events)),
        "by_status": dict(Counter(e.status for e in events)),
        "steps": steps,
        "iterators": iterators,
    }


def _execution(summary: dict[str, Any], e: Event) -> None:
    summary["status"] = "RUNNING" if e.event_type == T.EXECUTION_START else e.status
    if e.event_type == T.EXECUTION_START:
        summary["started_at"] = e.created_at
    else:
        summary["finished_at"], summary["duration"], summary["error"] = e.created_at, e.duration, e.error


def _new_step() -> dict[str, Any]:
    return {
        "status": "PENDING",
        "runs": 0,
        "attempts": 0,
        "started_at": None,
        "finished_at": None,
        "duration": None,
        "error": None,
    }


def _step(step: dict[str, Any], e: Event) -> None:
    step["status"] = e.status
    if e.event_type == T.STEP_STARTED:
        step["runs"] += 1
        step["started_at"] = step["started_at"] or e.created_at
        return
    step["finished_at"], step["duration"], step["error"] = e.created_at, e.duration, e.error


def _iterator(iterators: dict[str, dict[str, Any]], e: Event) -> None:
    name = e.node_name or ""
    if e.event_type == T.ITERATOR_STARTED:
        # A retried step (its retry policy, or `noetl retry`) starts its iterator again: the summary's
        # figures are of the latest run, and `runs` lists every run with its own counts.
        earlier = iterators.get(name, {}).get("runs", [])
        iterators[name] = {
            "status": "RUNNING",
            "count": e.meta.get("count"),
            "kept": e.meta.get("resumed", 0),
            "total": e.meta.get("total", e.meta.get("count")),
            "mode": e.meta.get("mode"),
            "concurrency": e.meta.get("concurrency"),
            "completed": 0,
            "failed": 0,
            "started_at": e.created_at,
            "duration": None,
        }
        iterators[name]["runs"] = [*earlier, _run_of(iterators[name])]
        return
    it = iterators.get(name)
    if it is None:
        return
    if e.event_type in _ITEM_END:
        it[_ITEM_END[e.event_type]] += 1
    else:
        it["status"], it["duration"] = (
            e.status,
            e.duration if e.duration is not None else e.meta.get("duration"),
        )
        it.update({k: e.meta[k] for k in _ITERATOR_FIGURES if k in e.meta})
    it["runs"][-1] = _run_of(it)


def _run_of(it: dict[str, Any]) -> dict[str, Any]:
    return {k: it[k] for k in ("status", "count", "kept", "completed", "failed", "started_at", "duration")}
