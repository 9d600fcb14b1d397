"""One orchestrator for both modes: what is done for an execution after something in it ended.

The decision is the pure engine's (engine.orchestration.decide: the planner, and "end only when no work
is open"). Around it, both modes do the same things in the same order, written once here:

- dispatch each command the planner gives (`advance`);
- or, when the execution ends, write its end event, make it durable before anyone can see the
  execution as finished, tell whoever waits for it (the parent step of a sub-playbook on workers), and
  remove what the execution left on this host (runtime.cleanup);
- stop an execution from outside with the same `execution_failed` (`cancel`);
- close the attempts a process that is gone left running, with the same events (`abandon`).

What differs between the modes is only the Dispatcher: threads of this process (runtime.local), jobs
in the queue (runtime.broker). A dispatcher says whether work of the execution is still open, runs a
command, writes an event through its mode's writer, and is told when the execution has ended.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from noetl.engine.orchestration import decide, stopped_event
from noetl.engine.planner import Finish, Planner, RunStep
from noetl.engine.recovery import PlannedEvent, abandoned_attempt
from noetl.engine.state import ExecutionState
from noetl.runtime.cleanup import after_end
from noetl.runtime.step_runner import seconds_since


class Dispatcher(Protocol):
    def open_work(self) -> bool:
        """Whether some work of the execution still runs (a step's thread, a leased job, a fan-out's
        chunks). Work that only waits to start (an attempt waiting for its retry's delay) is dropped
        here, not waited for: an execution that ends starts nothing new."""

    def dispatch(self, cmd: RunStep) -> None:
        """Run the command, unless it already runs (a command is dispatched once)."""

    def write(self, planned: PlannedEvent) -> None:
        """Write one event of the execution through this mode's writer."""

    def ended(self) -> None:
        """The execution's end is durable: tell whoever waits for it."""


def advance(
    store: Any,
    execution_id: str,
    planner: Planner,
    state: ExecutionState,
    dispatcher: Dispatcher,
    lock: contextlib.AbstractContextManager[Any] | None = None,
) -> Finish | None:
    """Plan and dispatch, or end the execution; returns how it ended, if it did. `lock`: held while
    the state is read (a local run's steps fold their events into it from their threads); the end is
    written after it is released, since writing folds the event into the same state."""
    with lock if lock is not None else contextlib.nullcontext():
        decision = decide(planner, state, dispatcher.open_work, seconds_since(state.started_at))
    if decision.end is None:
        for cmd in decision.run:
            dispatcher.dispatch(cmd)
        return None
    dispatcher.write(decision.end)
    store.flush()  # durable before anyone is told the execution finished
    dispatcher.ended()
    after_end(store, execution_id)
    return decision.finish


def cancel(
    store: Any,
    dispatcher: Dispatcher,
    node_name: str | None,
    node_id: str | None,
    started_at: str,
    reason: str,
) -> None:
    """End an execution from outside (`noetl cancel`, a cancelled parent, a parent step that timed
    out) with `execution_failed` (`meta.reason: cancelled`); its running steps stop at their next event."""
    dispatcher.write(stopped_event(node_name, node_id, "cancelled", reason, seconds_since(started_at)))
    store.flush()


def abandon(
    store: Any,
    dispatcher: Dispatcher,
    step: str,
    node_type: str | None,
    attempt: int,
    message: str,
    meta: dict[str, Any],
    give_up_after: int | None = None,
) -> None:
    """Close an attempt whose process is gone (a killed `noetl run`, a worker whose lease expired) as
    engine.recovery says: `action_error`, then `action_retry` (or the step's failure after
    `give_up_after` such attempts); the next attempt of the same run skips the items it finished."""
    for planned in abandoned_attempt(step, node_type, attempt, message, meta, give_up_after=give_up_after):
        dispatcher.write(planned)
    store.flush()
