"""The planner over states folded from hand-made event lists: start, fan-out, join, failure, retry, end."""

from __future__ import annotations

from typing import Any

from noetl.dsl import parse_playbook
from noetl.engine.events import Event, EventType
from noetl.engine.planner import Finish, Planner, RunStep, final_result
from noetl.engine.state import COMPLETED, FAILED, RETRY_WAIT, fold

T = EventType
EXEC = "e1"

# start fans out to a and b; both go to end (a join).
DIAMOND = parse_playbook(
    """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: diamond}
workflow:
  - step: start
    next: [{step: a}, {step: b}]
  - step: a
    type: python
    code: "def main(): return {'a': 1}"
    next: [{step: end}]
  - step: b
    type: python
    code: "def main(): return {'b': 2}"
    next: [{step: end}]
  - step: end
""",
    source="diamond.yaml",
)


class Log:
    """Builds an execution's events with increasing ids, as the sink would."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, event_type: str, node: str | None = None, **kw: Any) -> Log:
        self.events.append(
            Event(
                execution_id=EXEC, event_type=event_type, node_name=node, event_id=len(self.events) + 1, **kw
            )
        )
        return self

    def start(self, workload: dict[str, Any] | None = None) -> Log:
        return self.add(T.EXECUTION_START, context={"workload": workload or {}, "path": "diamond"})

    def ran(self, node: str, result: Any = None, goes_to: tuple[str, ...] = ()) -> Log:
        self.add(T.STEP_STARTED, node)
        nxt = [{"step": s, "data": None} for s in goes_to]
        return self.add(T.STEP_COMPLETED, node, result=result, meta={"next": nxt})

    def plan(self) -> Any:
        return Planner(DIAMOND).plan(fold(self.events))


def test_start_runs_first() -> None:
    plan = Log().start().plan()
    assert plan.run == (RunStep("start", attempt=1, run=1),)
    assert plan.finish is None


def test_nothing_is_planned_before_the_execution_starts_or_while_start_runs() -> None:
    assert Log().plan().run == ()
    running = Log().start().add(T.STEP_STARTED, "start").plan()
    assert running.run == () and running.finish is None


def test_fan_out_runs_both_branches() -> None:
    plan = Log().start().ran("start", goes_to=("a", "b")).plan()
    assert plan.run == (RunStep("a"), RunStep("b"))
    assert plan.finish is None


def test_a_joined_end_waits_for_the_other_branch() -> None:
    log = Log().start().ran("start", goes_to=("a", "b")).add(T.STEP_STARTED, "a").add(T.STEP_STARTED, "b")
    log.add(T.STEP_COMPLETED, "a", result={"a": 1}, meta={"next": [{"step": "end"}]})
    plan = log.plan()
    assert plan.run == () and plan.finish is None  # b is still running and can reach end


def test_a_joined_end_runs_once_after_both_branches() -> None:
    log = Log().start().ran("start", goes_to=("a", "b")).add(T.STEP_STARTED, "a").add(T.STEP_STARTED, "b")
    log.add(T.STEP_COMPLETED, "a", result={"a": 1}, meta={"next": [{"step": "end", "data": {"x": 1}}]})
    log.add(T.STEP_COMPLETED, "b", result={"b": 2}, meta={"next": [{"step": "end", "data": {"y": 2}}]})
    plan = log.plan()
    assert plan.run == (RunStep("end", attempt=1, run=1),)
    state = fold(log.add(T.STEP_STARTED, "end").events)
    assert state.step("end").edge_data == [{"x": 1}, {"y": 2}]  # both payloads, one run
    assert Planner(DIAMOND).plan(state).run == ()


def test_a_branch_still_waiting_to_start_also_blocks_the_join() -> None:
    log = Log().start().ran("start", goes_to=("a", "b")).ran("a", goes_to=("end",))
    assert log.plan().run == (RunStep("b"),)  # b runs; end waits for it


def test_a_failed_step_finishes_failed_once_nothing_runs() -> None:
    log = Log().start().ran("start", goes_to=("a", "b")).add(T.STEP_STARTED, "a").add(T.STEP_STARTED, "b")
    log.add(T.STEP_FAILED, "a", error="boom")
    waiting = log.plan()
    assert waiting.run == () and waiting.finish is None  # b is still running: let it finish
    log.add(T.STEP_COMPLETED, "b", result={"b": 2}, meta={"next": [{"step": "end"}]})
    plan = log.plan()
    assert plan.run == ()  # end is not started after a failure
    assert plan.finish is not None
    assert plan.finish.status == FAILED
    assert plan.finish.error is not None and "step 'a' failed: boom" in plan.finish.error


def test_retry_waiting_is_replanned_with_the_next_attempt_and_not_before() -> None:
    log = Log().start().ran("start", goes_to=("a",)).add(T.STEP_STARTED, "a")
    log.add(T.ACTION_STARTED, "a", attempt=1)
    log.add(T.ACTION_RETRY, "a", meta={"next_attempt": 2, "retry_at": 1234.5})
    state = fold(log.events)
    assert state.step("a").status == RETRY_WAIT
    plan = Planner(DIAMOND).plan(state)
    assert plan.run == (RunStep("a", attempt=2, run=1, not_before=1234.5),)
    assert plan.finish is None


def test_a_retry_in_flight_blocks_the_join() -> None:
    log = Log().start().ran("start", goes_to=("a", "b")).ran("b", goes_to=("end",)).add(T.STEP_STARTED, "a")
    log.add(T.ACTION_RETRY, "a", meta={"next_attempt": 3, "retry_at": 99.0})
    assert log.plan().run == (RunStep("a", attempt=3, run=1, not_before=99.0),)  # end not yet


def test_completion_when_nothing_is_left_with_the_end_result() -> None:
    log = (
        Log()
        .start()
        .ran("start", goes_to=("a", "b"))
        .ran("a", {"a": 1}, ("end",))
        .ran("b", {"b": 2}, ("end",))
    )
    log.ran("end", {"total": 3})
    plan = log.plan()
    assert plan.run == ()
    assert plan.finish == Finish(COMPLETED, result={"total": 3})


def test_final_result_is_the_end_steps_even_if_another_step_finished_later() -> None:
    log = Log().start().ran("start", goes_to=("a", "b")).ran("a", {"a": 1}).ran("end", {"done": True})
    log.ran("b", {"b": 2})
    assert final_result(fold(log.events)) == {"done": True}


def test_final_result_without_an_end_result_is_the_last_non_empty_result() -> None:
    log = Log().start().ran("start").ran("a", {"a": 1}).ran("b", None)
    assert final_result(fold(log.events)) == {"a": 1}


def test_a_finished_execution_plans_nothing() -> None:
    log = Log().start().ran("start").add(T.EXECUTION_COMPLETE, result=None)
    plan = log.plan()
    assert plan.run == () and plan.finish is None
