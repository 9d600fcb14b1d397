"""Which items of an iterator step are already done: one rule for a retry, a resume and a worker.

An item that has an `iteration_completed` in the current run of its step is not run again, whichever
attempt (or process) completed it; its recorded result is reused. A step in a cycle runs more than once,
and each run starts afresh, so only the events of one run count. A run that `noetl retry` asked for
(an `execution_retry` naming the step before its `step_started`) is the exception: it keeps what the
run before it kept and completed, except the items the retry named. Pure: a function of the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from noetl.engine.events import Event, EventType

# The only events items_done reads, and with them run_events finds a run's item ends: a store that can
# filter may read just these (of one step) instead of the whole log, half of which is item starts.
ITEM_LOG_TYPES = (
    EventType.STEP_STARTED,
    EventType.EXECUTION_RETRY,  # its node_name is the step it runs again
    EventType.ITERATION_COMPLETED,
    EventType.ITERATION_FAILED,
)


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
    """index -> result of the items of that run of `step` that need not run again: those some attempt
    of it completed, and, for a run a retry asked for, those the run before it had (see above)."""
    runs = _runs_done(events, step)
    if not runs:
        return {}
    if run is None:
        return runs[-1]
    return runs[run - 1] if 0 < run <= len(runs) else {}


def items_kept_by_retry(events: Iterable[Event], step: str, rerun: Iterable[int] = ()) -> dict[int, Any]:
    """What the run that a retry of `step` starts will not run again: the latest run's done items
    (items_done), less `rerun` (items the user named to run again although they succeeded)."""
    done = items_done(events, step)
    for index in rerun:
        done.pop(index, None)
    return done


def _runs_done(events: Iterable[Event], step: str) -> list[dict[int, Any]]:
    """For each run of `step`, in order: index -> result of its items that need not run again."""
    runs: list[dict[int, Any]] = []
    rerun: set[int] = set()
    pending_retry = False
    for e in events:
        if e.event_type == EventType.EXECUTION_RETRY and (e.meta or {}).get("step") == step:
            pending_retry = True
            rerun = set((e.meta or {}).get("rerun") or ())
            continue
        if e.node_name != step:
            continue
        if e.event_type == EventType.STEP_STARTED:
            carried = (
                {i: r for i, r in runs[-1].items() if i not in rerun} if (pending_retry and runs) else {}
            )
            runs.append(carried)
            pending_retry, rerun = False, set()
        elif e.event_type == EventType.ITERATION_COMPLETED and e.current_index is not None and runs:
            runs[-1][e.current_index] = e.result
    return runs
