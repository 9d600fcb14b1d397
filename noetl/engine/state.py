"""Fold an execution's events into its state. The log is the truth; this is only a view of it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from noetl.engine.events import Event, EventType

PENDING, RUNNING, RETRY_WAIT, COMPLETED, FAILED = "pending", "running", "retry_wait", "completed", "failed"


@dataclass(frozen=True)
class SealedPayload:
    """An edge payload the log shows masked (`shown`): its real value is sealed beside the log under
    `name`, and the runtime opens it for the step it starts (runtime.scope.real_payloads)."""

    name: str
    shown: Any


@dataclass
class StepState:
    name: str
    status: str = PENDING
    attempt: int = 1
    runs: int = 0
    result: Any = None
    edge_data: list[Any] = field(default_factory=list)  # payloads of the transitions that started this run
    started_at: str = ""
    retry_at: float | None = None
    error: str | None = None
    sealed: bool = False  # its real result is sealed beside the log (the logged one is masked)
    retried: bool = False  # its latest run was asked for by an execution_retry (noetl retry)


@dataclass
class ExecutionState:
    execution_id: str = ""
    parent_execution_id: str | None = None
    playbook_path: str = ""
    workload: dict[str, Any] = field(default_factory=dict)
    workload_sealed: bool = False  # the real workload is sealed beside the log (the shown one is masked)
    status: str = PENDING
    steps: dict[str, StepState] = field(default_factory=dict)
    triggers: dict[str, list[Any]] = field(default_factory=dict)  # step -> edge payloads waiting for it
    completed_order: list[str] = field(default_factory=list)
    failed_step: str | None = None
    error: str | None = None
    result: Any = None
    last_event_id: int = 0
    started_at: str = ""
    stop_after: str | None = None  # a retry with --no-continue: this step's `next` is not followed
    retry_pending: str | None = None  # the step an execution_retry asked for, until its run starts

    def step(self, name: str) -> StepState:
        found = self.steps.get(name)
        if found is None:
            found = self.steps[name] = StepState(name)
        return found

    @property
    def finished(self) -> bool:
        return self.status in (COMPLETED, FAILED)

    def results(self) -> dict[str, Any]:
        return {name: s.result for name, s in self.steps.items() if s.runs and s.status == COMPLETED}

    def apply(self, event: Event) -> None:
        """Advance the state by one event. Events of iterations and saves do not move the workflow."""
        self.last_event_id = max(self.last_event_id, event.event_id)
        handler = _HANDLERS.get(event.event_type)
        if handler is not None:
            handler(self, event)


def fold(events: Iterable[Event]) -> ExecutionState:
    state = ExecutionState()
    for event in events:
        state.apply(event)
    return state


def _execution_start(state: ExecutionState, e: Event) -> None:
    context = e.context or {}
    state.execution_id = e.execution_id
    state.parent_execution_id = e.parent_execution_id
    state.workload = dict(context.get("workload") or {})
    state.workload_sealed = bool(context.get("workload_sealed"))
    state.playbook_path = str(context.get("path", ""))
    state.status = RUNNING
    state.started_at = e.created_at
    state.triggers.setdefault("start", []).append(None)


def _step_started(state: ExecutionState, e: Event) -> None:
    s = state.step(e.node_name or "")
    s.status, s.attempt, s.runs, s.started_at, s.error = RUNNING, 1, s.runs + 1, e.created_at, None
    s.edge_data = state.triggers.pop(s.name, [])
    s.retried = state.retry_pending == s.name
    if s.retried:
        state.retry_pending = None


def _action_started(state: ExecutionState, e: Event) -> None:
    s = state.step(e.node_name or "")
    s.status, s.attempt, s.retry_at = RUNNING, e.attempt or s.attempt, None


def _action_retry(state: ExecutionState, e: Event) -> None:
    s = state.step(e.node_name or "")
    s.status = RETRY_WAIT
    s.attempt = int(e.meta.get("next_attempt", s.attempt + 1))
    s.retry_at = e.meta.get("retry_at")


def _step_completed(state: ExecutionState, e: Event) -> None:
    s = state.step(e.node_name or "")
    s.status, s.result = COMPLETED, e.result
    s.sealed = bool(e.meta.get("sealed"))
    state.completed_order.append(s.name)
    if state.stop_after == s.name:  # a retry that does not continue past this step
        state.stop_after = None
        return
    for taken in e.meta.get("next", []):
        state.triggers.setdefault(taken["step"], []).append(_payload(taken))


def _payload(taken: dict[str, Any]) -> Any:
    """What a taken transition hands the step it starts: its `data`, or, when the log shows that masked
    (it held a secret), the name it is sealed under beside the log (the runtime opens it)."""
    data = taken.get("data")
    return SealedPayload(str(taken["sealed"]), data) if taken.get("sealed") else data


def _step_failed(state: ExecutionState, e: Event) -> None:
    s = state.step(e.node_name or "")
    s.status, s.error = FAILED, e.error
    if e.meta.get("handled"):  # its `on: failure` transitions were taken: the workflow goes on
        for taken in e.meta.get("next", []):
            state.triggers.setdefault(taken["step"], []).append(_payload(taken))
        return
    if state.failed_step is None:
        state.failed_step, state.error = s.name, e.error


def _execution_complete(state: ExecutionState, e: Event) -> None:
    state.status, state.result = COMPLETED, e.result


def _execution_failed(state: ExecutionState, e: Event) -> None:
    state.status, state.error = FAILED, e.error


def _execution_retry(state: ExecutionState, e: Event) -> None:
    """A finished execution runs `meta.step` again, with the inputs of its last run; the workflow then
    goes on from it as it would have (or stops after it: `meta.continue` false)."""
    name = str(e.meta.get("step") or e.node_name or "")
    s = state.step(name)
    state.status, state.failed_step, state.error, state.result = RUNNING, None, None, None
    state.triggers[name] = list(s.edge_data) or [None]
    s.status, s.attempt, s.retry_at, s.error = PENDING, 1, None, None
    state.retry_pending = name
    state.stop_after = None if e.meta.get("continue", True) else name


_HANDLERS = {
    EventType.EXECUTION_START: _execution_start,
    EventType.STEP_STARTED: _step_started,
    EventType.ACTION_STARTED: _action_started,
    EventType.ACTION_RETRY: _action_retry,
    EventType.STEP_COMPLETED: _step_completed,
    EventType.STEP_FAILED: _step_failed,
    EventType.EXECUTION_COMPLETE: _execution_complete,
    EventType.EXECUTION_FAILED: _execution_failed,
    EventType.EXECUTION_RETRY: _execution_retry,
}
# The event types that move the workflow; every other event (items, saves, iterators) is detail that
# fold() passes over, so a reader that only needs the state may read just these (store.read_workflow).
WORKFLOW_TYPES = frozenset(_HANDLERS)
