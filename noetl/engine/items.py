"""Which items of an iterator step are already done: one rule for a retry, a resume and a worker.

An item that has an `iteration_completed` in the current run of its step is not run again, whichever
attempt (or process) completed it; its recorded result is reused. A step in a cycle runs more than once,
and each run starts afresh, so only the events of one run count. Pure: a function of the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from noetl.engine.events import Event, EventType


def run_events(events: Iterable[Event], step: str, run: int | None = None) -> list[Event]:
    """The events of one run of `step` (the n-th `step_started` onwards); the latest run when None."""
    runs: list[list[Event]] = []
    for e in events:
        if e.node_name != step:
            continue
        if e.event_type == EventType.STEP_STARTED:
            runs.append([])
        if runs:
            runs[-1].append(e)
    if not runs:
        return []
    if run is None:
        return runs[-1]
    return runs[run - 1] if 0 < run <= len(runs) else []


def items_done(events: Iterable[Event], step: str, run: int | None = None) -> dict[int, Any]:
    """index -> result of the items of that run of `step` that some attempt completed."""
    done: dict[int, Any] = {}
    for e in run_events(events, step, run):
        if e.event_type == EventType.ITERATION_COMPLETED and e.current_index is not None:
            done[e.current_index] = e.result
    return done
