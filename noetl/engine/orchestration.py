"""What an execution does after something in it ended: one rule for both modes. Pure.

The planner (engine.planner) says which steps may run now or how the execution ends. Around it, both
modes do the same: dispatch each command once (a command already running is not dispatched again), and
end the execution only when none of its work is still open, so that every event of a step still running
(a parallel branch, the last item of an iterator) is written before the end. What "open work" is and how
a command is run differ, and only that: threads in this process (runtime.local), jobs in the queue
(runtime.broker).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from noetl.dsl.models import Playbook
from noetl.engine.events import EventType as T
from noetl.engine.planner import Finish, Planner, RunStep
from noetl.engine.recovery import PlannedEvent
from noetl.engine.state import COMPLETED, ExecutionState


@dataclass(frozen=True)
class Decision:
    run: tuple[RunStep, ...] = ()  # commands to dispatch (those already dispatched are skipped)
    end: PlannedEvent | None = None  # the execution's end event, to write now
    finish: Finish | None = None  # how it ends (with `end`)


def decide(
    planner: Planner, state: ExecutionState, still_running: Callable[[], bool], duration: float | None
) -> Decision:
    """`still_running()`: whether some work of the execution runs (a step's thread, a leased job). It is
    asked only when the planner says the execution ends, and work that only waits to start (an attempt
    waiting for its retry's delay) is dropped by it, not waited for: the planner starts nothing new in
    an execution that ends. `duration`: the seconds since `execution_start`, for the end event."""
    plan = planner.plan(state)
    if plan.finish is None:
        return Decision(run=plan.run)
    if still_running():
        return Decision()  # what still runs is recorded first; its end decides again
    return Decision(end=end_event(planner.playbook, plan.finish, duration), finish=plan.finish)


def end_event(playbook: Playbook, finish: Finish, duration: float | None) -> PlannedEvent:
    """`execution_complete` or `execution_failed`, with the same fields whoever writes it."""
    event_type = T.EXECUTION_COMPLETE if finish.status == COMPLETED else T.EXECUTION_FAILED
    return PlannedEvent(
        event_type,
        {
            "node_name": playbook.name,
            "node_id": playbook.path,
            "node_type": "playbook",
            "result": finish.result,
            "error": finish.error,
            "duration": duration,
        },
    )


def stopped_event(
    node_name: str | None, node_id: str | None, reason: str, why: str, duration: float | None
) -> PlannedEvent:
    """`execution_failed` for an execution stopped from outside, the same whoever writes it:
    `reason` "cancelled" (`noetl cancel`, a cancelled parent, a parent step that timed out) or
    "abandoned" (the process that ran it is gone); `why` says what happened."""
    return PlannedEvent(
        T.EXECUTION_FAILED,
        {
            "node_name": node_name,
            "node_id": node_id,
            "node_type": "playbook",
            "error": f"{reason}: {why}",
            "meta": {"reason": reason},
            "duration": duration,
        },
    )
