"""runtime.orchestrator: what both modes do after something in an execution ended, with a recording
dispatcher (the Dispatcher port: threads locally, jobs on workers) and a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from noetl.dsl import parse_playbook
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.planner import Planner, RunStep
from noetl.engine.recovery import PlannedEvent
from noetl.engine.state import fold
from noetl.runtime import orchestrator

PLAYBOOK = parse_playbook(
    """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: two, path: tests/two}
workflow:
  - step: start
    type: python
    code: |
      def main():
          return 1
    next: [{step: end}]
  - step: end
    result: "{{ start.result }}"
"""
)


class Recorder:
    def __init__(self, store: Any, execution_id: str, busy: bool = False) -> None:
        self.store, self.execution_id, self.busy = store, execution_id, busy
        self.dispatched: list[RunStep] = []
        self.written: list[PlannedEvent] = []
        self.ended_after: list[int] = []  # how many events were durable when ended() was called

    def open_work(self) -> bool:
        return self.busy

    def dispatch(self, cmd: RunStep) -> None:
        self.dispatched.append(cmd)

    def write(self, planned: PlannedEvent) -> None:
        self.written.append(planned)
        events = self.store.read(self.execution_id)
        self.store.append([_event(self.execution_id, len(events) + 1, planned.event_type, **planned.fields)])

    def ended(self) -> None:
        self.ended_after.append(len(self.store.read(self.execution_id)))


def _event(execution_id: str, event_id: int, event_type: str, **fields: Any) -> Event:
    return Event(
        execution_id=execution_id,
        event_type=event_type,
        event_id=event_id,
        created_at=datetime.now(UTC).isoformat(),
        **fields,
    )


def _log(store: Any, execution_id: str, *steps: str) -> list[Event]:
    """execution_start, then each of `steps` started and completed (result 1)."""
    events = [_event(execution_id, 1, T.EXECUTION_START, node_name="two", node_type="playbook", context={})]
    for step in steps:
        n = len(events)
        events.append(_event(execution_id, n + 1, T.STEP_STARTED, node_name=step, node_type="step"))
        events.append(
            _event(execution_id, n + 2, T.STEP_COMPLETED, node_name=step, node_type="step", result=1)
        )
    store.append(events)
    store.flush()
    return events


def test_advance_dispatches_the_planners_commands_and_writes_nothing(store: Any) -> None:
    recorder = Recorder(store, "e1")
    state = fold(_log(store, "e1"))
    assert orchestrator.advance(store, "e1", Planner(PLAYBOOK), state, recorder) is None
    assert [(c.step, c.run, c.attempt) for c in recorder.dispatched] == [("start", 1, 1)]
    assert recorder.written == [] and recorder.ended_after == []


def test_an_ending_execution_waits_while_work_is_open(store: Any) -> None:
    recorder = Recorder(store, "e2", busy=True)
    state = fold(_log(store, "e2", "start", "end"))
    assert orchestrator.advance(store, "e2", Planner(PLAYBOOK), state, recorder) is None
    assert recorder.written == [] and recorder.dispatched == []


def test_the_end_is_written_once_and_durable_before_the_waiter_is_told(store: Any) -> None:
    recorder = Recorder(store, "e3")
    state = fold(_log(store, "e3", "start", "end"))
    finish = orchestrator.advance(store, "e3", Planner(PLAYBOOK), state, recorder)
    assert finish is not None and (finish.status, finish.result) == ("completed", 1)
    assert [p.event_type for p in recorder.written] == [T.EXECUTION_COMPLETE]
    assert recorder.ended_after == [6], "the end event was in the log when ended() ran"
    assert store.execution("e3").status == "COMPLETED"


def test_cancel_and_abandon_write_the_engines_events(store: Any) -> None:
    recorder = Recorder(store, "e4")
    events = _log(store, "e4")
    orchestrator.abandon(
        store, recorder, "start", "python", 1, "the process is gone", {"reason": "interrupted"}
    )
    assert [p.event_type for p in recorder.written] == [T.ACTION_ERROR, T.ACTION_RETRY]
    orchestrator.cancel(store, recorder, "two", "tests/two", events[0].created_at, "asked to")
    end = store.read("e4")[-1]
    assert (end.event_type, end.meta, end.error) == (
        T.EXECUTION_FAILED,
        {"reason": "cancelled"},
        "cancelled: asked to",
    )
